//! A round initial (square for a room) with a presence dot whose shape (filled vs. ring) carries
//! meaning beyond colour.
import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';

const HUES = [212, 262, 330, 14, 36, 150, 186, 290];

export function hueFor(name: string): number {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)!) >>> 0;
  return HUES[hash % HUES.length];
}

@Component({
  selector: 'app-avatar',
  template: `
    <span class="circle" [class]="shape()" [style.--hue]="hue()" aria-hidden="true">{{
      initial()
    }}</span>
    @if (presence() !== null) {
      <span class="dot" [class.on]="presence()" aria-hidden="true"></span>
    }
  `,
  styles: `
    :host {
      position: relative;
      display: inline-block;
      flex: none;
      width: var(--size, 44px);
      height: var(--size, 44px);
    }
    .circle {
      display: grid;
      place-items: center;
      width: 100%;
      height: 100%;
      border-radius: 50%;
      background: hsl(var(--hue) 70% 92%);
      color: hsl(var(--hue) 55% 32%);
      font-weight: 700;
      font-size: calc(var(--size, 44px) * 0.42);
      text-transform: uppercase;
    }
    /* A room is a place, not a person: square corners. */
    .circle.room {
      border-radius: 28%;
    }
    /* A group: a second disc peeking out behind. */
    .circle.group {
      box-shadow: 3px -3px 0 -1px hsl(var(--hue) 45% 75%);
    }
    @media (prefers-color-scheme: dark) {
      .circle {
        background: hsl(var(--hue) 35% 24%);
        color: hsl(var(--hue) 80% 84%);
      }
    }
    .dot {
      position: absolute;
      right: -1px;
      bottom: -1px;
      width: 13px;
      height: 13px;
      border-radius: 50%;
      background: var(--surface);
      border: 2.5px solid var(--text-3);
      box-shadow: 0 0 0 2px var(--surface);
    }
    .dot.on {
      background: var(--online);
      border-color: var(--online);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Avatar {
  readonly name = input.required<string>();
  /** `null` hides the dot. */
  readonly presence = input<boolean | null>(null);
  readonly shape = input<'direct' | 'group' | 'room'>('direct');
  protected readonly initial = computed(() => [...this.name()][0] ?? '?');
  protected readonly hue = computed(() => hueFor(this.name()));
}
