//! The message box: Enter sends, Shift+Enter breaks the line, drafts are kept per conversation.
import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  computed,
  effect,
  inject,
  input,
  output,
  signal,
  untracked,
  viewChild,
} from '@angular/core';
import { ChatStore } from '../core/chat-store';
import { MESSAGE_MAX, messageLength } from '../core/validation';

@Component({
  selector: 'app-composer',
  template: `
    <form class="composer" (submit)="submit($event)">
      <label [for]="'composer-' + key()" class="sr-only">Message {{ label() }}</label>
      <textarea
        #box
        [id]="'composer-' + key()"
        rows="1"
        [placeholder]="'Message ' + label()"
        enterkeyhint="send"
        [value]="text()"
        (input)="onInput(box.value)"
        (keydown)="onKeydown($event)"
        [attr.aria-describedby]="tooLong() ? 'composer-count' : null"
        data-testid="composer"
      ></textarea>
      @if (nearLimit()) {
        <span id="composer-count" class="count" [class.over]="tooLong()" aria-live="polite"
          >{{ length() }}/{{ max }}</span
        >
      }
      <button
        type="submit"
        class="send"
        [disabled]="!canSend()"
        aria-label="Send"
        data-testid="send"
      >
        <svg viewBox="0 0 24 24" aria-hidden="true">
          <path d="M4 12l16-8-6 16-2.5-6.5z" fill="currentColor" />
        </svg>
      </button>
    </form>
  `,
  styles: `
    .composer {
      display: flex;
      align-items: flex-end;
      gap: 8px;
      padding: 8px 12px calc(12px + env(safe-area-inset-bottom));
      background: var(--bg);
    }
    textarea {
      flex: 1;
      min-height: 44px;
      max-height: 180px;
      padding: 11px 16px;
      border: 1px solid var(--border);
      border-radius: 22px;
      background: var(--surface);
      resize: none;
      field-sizing: content;
      line-height: 1.4;
    }
    textarea:focus {
      outline: none;
      border-color: var(--accent);
      box-shadow: 0 0 0 3px var(--accent-soft);
    }
    .count {
      align-self: center;
      font-size: 0.75rem;
      color: var(--text-3);
    }
    .count.over {
      color: var(--danger);
      font-weight: 700;
    }
    .send {
      display: grid;
      place-items: center;
      flex: none;
      width: 44px;
      height: 44px;
      border: 0;
      border-radius: 50%;
      background: var(--accent);
      color: var(--on-accent);
    }
    .send:disabled {
      background: var(--surface-2);
      color: var(--text-3);
      cursor: default;
    }
    .send svg {
      width: 20px;
      height: 20px;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Composer {
  /** The conversation's store key (drafts are kept by it) and the name it goes by. */
  readonly key = input.required<string>();
  readonly label = input.required<string>();
  readonly send = output<string>();
  readonly typing = output<void>();
  private readonly store = inject(ChatStore);

  protected readonly max = MESSAGE_MAX;
  protected readonly text = signal('');
  protected readonly length = computed(() => messageLength(this.text()));
  protected readonly nearLimit = computed(() => this.length() > MESSAGE_MAX - 500);
  protected readonly tooLong = computed(() => this.length() > MESSAGE_MAX);
  protected readonly canSend = computed(() => this.length() > 0 && !this.tooLong());

  private readonly box = viewChild.required<ElementRef<HTMLTextAreaElement>>('box');

  constructor() {
    // Switching conversations swaps the draft and puts the cursor in the box.
    effect((onCleanup) => {
      const key = this.key();
      untracked(() => {
        this.text.set(this.store.draft(key));
        // On touch screens focusing would pop the keyboard over the conversation; wait for a tap.
        if (!globalThis.matchMedia?.('(pointer: coarse)').matches) {
          queueMicrotask(() => this.box().nativeElement.focus({ preventScroll: true }));
        }
      });
      onCleanup(() => this.store.setDraft(key, untracked(this.text)));
    });
  }

  protected onInput(value: string): void {
    this.text.set(value);
    if (value.trim()) this.typing.emit();
  }

  protected onKeydown(event: KeyboardEvent): void {
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    this.submit();
  }

  protected submit(event?: Event): void {
    event?.preventDefault();
    if (!this.canSend()) return;
    this.send.emit(this.text());
    this.text.set('');
    this.store.setDraft(this.key(), '');
    this.box().nativeElement.value = '';
    this.box().nativeElement.focus();
  }
}
