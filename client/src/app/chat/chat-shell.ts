//! The signed-in layout: connection banner, conversation sidebar and the open conversation.
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  computed,
  inject,
  input,
  signal,
} from '@angular/core';
import { Api } from '../api/api';
import { Attention } from '../core/attention';
import { ChatStore } from '../core/chat-store';
import { Session } from '../core/session';
import { ConversationPane } from './conversation-pane';
import { EmptyPane } from './empty-pane';
import { Sidebar } from './sidebar';

@Component({
  selector: 'app-chat-shell',
  imports: [Sidebar, ConversationPane, EmptyPane],
  templateUrl: './chat-shell.html',
  styleUrl: './chat-shell.css',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class ChatShell {
  /** The conversation in the URL, if any. */
  readonly peer = input<string | null>(null);

  protected readonly store = inject(ChatStore);
  protected readonly attention = inject(Attention);
  private readonly session = inject(Session);
  private readonly api = inject(Api);

  private readonly now = signal(Date.now());
  protected readonly banner = computed(() => {
    const state = this.store.connection();
    if (state === 'offline')
      return {
        text: 'You’re offline. chatd will reconnect when the network is back.',
        retry: false,
        busy: false,
      };
    if (state !== 'reconnecting') return null;
    const at = this.store.retryAt();
    const seconds = at ? Math.max(0, Math.ceil((at - this.now()) / 1000)) : 0;
    return {
      text: seconds > 0 ? `Connection lost. Reconnecting in ${seconds} s…` : 'Reconnecting…',
      retry: true,
      busy: seconds === 0,
    };
  });
  protected readonly paneOpen = computed(() => this.store.active() !== null);

  constructor() {
    void this.store.start();
    const tick = setInterval(() => this.now.set(Date.now()), 1000);
    inject(DestroyRef).onDestroy(() => {
      clearInterval(tick);
      this.store.stop();
    });
  }

  protected reconnect(): void {
    this.store.reconnect();
  }

  async signOut(): Promise<void> {
    const token = this.session.token();
    this.store.stop();
    if (token) await this.api.signout(token).catch(() => undefined);
    this.session.end();
  }
}
