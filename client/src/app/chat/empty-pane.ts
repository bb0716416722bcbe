//! What the conversation pane shows on wide screens before a conversation is picked.
import { ChangeDetectionStrategy, Component } from '@angular/core';

@Component({
  selector: 'app-empty-pane',
  template: `
    <div class="empty">
      <svg viewBox="0 0 24 24" aria-hidden="true">
        <path
          d="M4 5h16a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H9l-4 3v-3H4a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1z"
          fill="none"
          stroke="currentColor"
          stroke-width="1.5"
          stroke-linejoin="round"
        />
      </svg>
      <h2>Your messages</h2>
      <p>Pick a conversation, or search for someone to start a new one.</p>
      <p class="keys">
        <kbd>Ctrl</kbd> + <kbd>K</kbd> (<kbd>⌘</kbd> <kbd>K</kbd> on a Mac) jumps to any
        conversation; <kbd>Esc</kbd> closes it again.
      </p>
    </div>
  `,
  styles: `
    :host {
      display: grid;
      place-items: center;
      height: 100%;
      padding: 24px;
    }
    .empty {
      max-width: 320px;
      text-align: center;
      color: var(--text-2);
    }
    svg {
      width: 56px;
      height: 56px;
      color: var(--text-3);
    }
    h2 {
      margin: 12px 0 4px;
      color: var(--text);
      font-size: 1.15rem;
    }
    p {
      margin: 0;
    }
    .keys {
      margin-top: 12px;
      font-size: 0.85rem;
      color: var(--text-3);
    }
    kbd {
      padding: 1px 5px;
      border: 1px solid var(--border);
      border-radius: 4px;
      font: inherit;
      font-size: 0.8rem;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class EmptyPane {}
