//! Ctrl/Cmd+K: a filterable list of my conversations of every kind; arrows move, Enter opens, Esc
//! closes.
import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  afterNextRender,
  computed,
  inject,
  output,
  signal,
  viewChild,
} from '@angular/core';
import { ChatStore, type Conversation } from '../core/chat-store';
import { Avatar } from '../ui/avatar';

/** Names containing the query, those starting with it first; all of them for an empty query. */
export function matchPeers(peers: readonly string[], query: string): string[] {
  const q = query.trim().toLowerCase();
  if (!q) return [...peers];
  const starts = peers.filter((p) => p.toLowerCase().startsWith(q));
  const contains = peers.filter(
    (p) => !p.toLowerCase().startsWith(q) && p.toLowerCase().includes(q),
  );
  return [...starts, ...contains];
}

interface Option {
  key: string;
  title: string;
  kind: Conversation['kind'];
  /** Presence for a direct conversation; null for the others. */
  online: boolean | null;
}

@Component({
  selector: 'app-quick-switcher',
  imports: [Avatar],
  template: `
    <div class="backdrop" (click)="closed.emit()" aria-hidden="true"></div>
    <div
      class="dialog"
      role="dialog"
      aria-modal="true"
      aria-labelledby="switcher-title"
      (keydown)="onKey($event)"
      data-testid="quick-switcher"
    >
      <h2 id="switcher-title" class="sr-only">Jump to a conversation</h2>
      <input
        #box
        type="text"
        role="combobox"
        aria-label="Jump to a conversation"
        aria-expanded="true"
        aria-controls="switcher-list"
        aria-autocomplete="list"
        [attr.aria-activedescendant]="matches().length > 0 ? 'switcher-' + selected() : null"
        placeholder="Jump to a conversation"
        autocomplete="off"
        autocapitalize="none"
        spellcheck="false"
        [value]="query()"
        (input)="onQuery(box.value)"
        data-testid="switcher-input"
      />
      <ul id="switcher-list" role="listbox" aria-label="Conversations">
        @for (option of matches(); track option.key; let i = $index) {
          <li
            role="option"
            [id]="'switcher-' + i"
            [attr.aria-selected]="i === selected()"
            (click)="chosen.emit(option.key)"
            (mousemove)="selected.set(i)"
            data-testid="switcher-option"
          >
            @if (option.online === null) {
              <app-avatar [name]="option.title" [shape]="option.kind" class="avatar-option" />
            } @else {
              <app-avatar [name]="option.title" [presence]="option.online" class="avatar-option" />
            }
            <span class="name">{{ option.title }}</span>
            @if (option.online !== null) {
              <span class="presence" [class.on]="option.online">{{
                option.online ? 'Online' : 'Offline'
              }}</span>
            } @else {
              <span class="presence">{{ option.kind === 'room' ? 'Room' : 'Group' }}</span>
            }
          </li>
        }
      </ul>
      @if (matches().length === 0) {
        <p class="none" role="status">
          {{
            query().trim()
              ? 'No conversation matches “' + query().trim() + '”.'
              : 'No conversations yet.'
          }}
        </p>
      }
      <p class="hint" aria-hidden="true">↑ ↓ to move · Enter to open · Esc to close</p>
    </div>
  `,
  styles: `
    .avatar-option {
      --size: 28px;
    }
    .backdrop {
      position: fixed;
      inset: 0;
      z-index: 20;
      background: rgb(0 0 0 / 35%);
    }
    .dialog {
      position: fixed;
      z-index: 21;
      top: 12vh;
      left: 50%;
      width: min(480px, calc(100vw - 24px));
      transform: translateX(-50%);
      padding: 12px;
      border-radius: var(--radius);
      background: var(--surface);
      box-shadow: var(--shadow);
    }
    input {
      width: 100%;
      height: 44px;
      padding: 0 14px;
      border: 1px solid var(--accent);
      border-radius: var(--radius-sm);
      background: var(--surface);
      box-shadow: 0 0 0 3px var(--accent-soft);
    }
    input:focus {
      outline: none;
    }
    ul {
      list-style: none;
      margin: 8px 0 0;
      padding: 0;
      max-height: 50vh;
      overflow-y: auto;
    }
    li {
      display: flex;
      align-items: center;
      gap: 10px;
      padding: 8px 10px;
      border-radius: var(--radius-sm);
      cursor: pointer;
    }
    li[aria-selected='true'] {
      background: var(--accent-soft);
    }
    .name {
      flex: 1;
      font-weight: 600;
    }
    .presence {
      font-size: 0.8rem;
      color: var(--text-3);
    }
    .presence.on {
      color: var(--online-text);
    }
    .none,
    .hint {
      margin: 10px 4px 0;
      color: var(--text-2);
    }
    .hint {
      font-size: 0.8rem;
      color: var(--text-3);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class QuickSwitcher {
  protected readonly store = inject(ChatStore);
  readonly chosen = output<string>();
  readonly closed = output<void>();

  protected readonly query = signal('');
  protected readonly selected = signal(0);
  private readonly options = computed<Option[]>(() =>
    this.store.conversations().map((c) => ({
      key: c.key,
      title: this.store.title(c),
      kind: c.kind,
      online: c.kind === 'direct' && c.peer ? this.store.isOnline(c.peer) : null,
    })),
  );
  protected readonly matches = computed(() => {
    const byTitle = new Map<string, Option[]>();
    for (const o of this.options()) byTitle.set(o.title, [...(byTitle.get(o.title) ?? []), o]);
    return matchPeers([...byTitle.keys()], this.query()).flatMap((t) => byTitle.get(t)!);
  });
  private readonly box = viewChild.required<ElementRef<HTMLInputElement>>('box');

  constructor() {
    afterNextRender(() => this.box().nativeElement.focus());
  }

  protected onQuery(value: string): void {
    this.query.set(value);
    this.selected.set(0);
  }

  protected onKey(event: KeyboardEvent): void {
    const count = this.matches().length;
    switch (event.key) {
      case 'ArrowDown':
      case 'ArrowUp':
        event.preventDefault();
        if (count > 0)
          this.selected.update((i) => (i + (event.key === 'ArrowDown' ? 1 : count - 1)) % count);
        break;
      case 'Enter': {
        event.preventDefault();
        const option = this.matches()[this.selected()];
        if (option) this.chosen.emit(option.key);
        break;
      }
      case 'Escape':
        event.preventDefault();
        this.closed.emit();
        break;
      case 'Tab':
        // A modal dialog keeps focus inside; the box is its only control.
        event.preventDefault();
        break;
    }
  }
}
