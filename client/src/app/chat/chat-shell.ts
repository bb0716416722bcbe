//! The signed-in layout: connection banner, conversation sidebar, the open conversation or the
//! room directory, the new-conversation dialog, and the keyboard shortcuts over all of them
//! (Ctrl/Cmd+K jumps to a conversation, Esc closes).
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  computed,
  effect,
  inject,
  input,
  signal,
  viewChild,
} from '@angular/core';
import { Api } from '../api/api';
import { Attention } from '../core/attention';
import { ChatStore } from '../core/chat-store';
import { Nav, conversationPath } from '../core/nav';
import { Session } from '../core/session';
import { ConversationPane } from './conversation-pane';
import { EmptyPane } from './empty-pane';
import { NewConversation } from './new-conversation';
import { QuickSwitcher } from './quick-switcher';
import { RoomDirectory } from './room-directory';
import { Sidebar } from './sidebar';

@Component({
  selector: 'app-chat-shell',
  imports: [Sidebar, ConversationPane, EmptyPane, QuickSwitcher, NewConversation, RoomDirectory],
  host: { '(document:keydown)': 'onKey($event)' },
  templateUrl: './chat-shell.html',
  styleUrl: './chat-shell.css',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class ChatShell {
  /** The conversation in the URL, if any, by store key (`bob`, `#12`). */
  readonly conversation = input<string | null>(null);
  /** `rooms`: the public room directory in place of a conversation. */
  readonly view = input<'chat' | 'rooms'>('chat');

  protected readonly store = inject(ChatStore);
  protected readonly attention = inject(Attention);
  private readonly session = inject(Session);
  private readonly api = inject(Api);
  private readonly nav = inject(Nav);
  private readonly sidebar = viewChild.required(Sidebar);
  protected readonly switcherOpen = signal(false);
  protected readonly newOpen = signal(false);
  protected readonly newMode = signal<'people' | 'room'>('people');
  private focusBeforeSwitcher: HTMLElement | null = null;

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
  /** A direct conversation named by its id is shown (and linked) by the other person's name. */
  protected readonly key = computed(() => {
    const key = this.conversation();
    return key ? this.store.resolve(key) : null;
  });
  protected readonly paneOpen = computed(() => this.view() === 'rooms' || this.key() !== null);

  constructor() {
    void this.store.start();
    effect(() => {
      const wanted = this.conversation();
      const key = this.key();
      if (wanted && key && key !== wanted) this.nav.replace(conversationPath(key));
    });
    const tick = setInterval(() => this.now.set(Date.now()), 1000);
    inject(DestroyRef).onDestroy(() => {
      clearInterval(tick);
      this.store.stop();
    });
  }

  protected onKey(event: KeyboardEvent): void {
    if (event.defaultPrevented || event.isComposing) return;
    const mod = (event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey;
    if (mod && event.key.toLowerCase() === 'k') {
      event.preventDefault();
      if (this.switcherOpen()) this.closeSwitcher();
      else this.openSwitcher();
    } else if (event.key === 'Escape' && this.paneOpen() && !this.newOpen()) {
      event.preventDefault();
      this.nav.go('/');
      this.sidebar().focusSearch();
    }
  }

  protected openSwitcher(): void {
    const focused = document.activeElement;
    this.focusBeforeSwitcher = focused instanceof HTMLElement ? focused : null;
    this.switcherOpen.set(true);
  }

  protected closeSwitcher(): void {
    this.switcherOpen.set(false);
    this.focusBeforeSwitcher?.focus();
    this.focusBeforeSwitcher = null;
  }

  protected jumpTo(key: string): void {
    const same = key === this.key();
    this.switcherOpen.set(false);
    // A newly opened conversation puts focus in its composer; the same one gets focus back.
    if (same) this.focusBeforeSwitcher?.focus();
    this.focusBeforeSwitcher = null;
    this.nav.go(conversationPath(key));
  }

  protected openNew(mode: 'people' | 'room' = 'people'): void {
    this.newMode.set(mode);
    const focused = document.activeElement;
    this.focusBeforeSwitcher = focused instanceof HTMLElement ? focused : null;
    this.newOpen.set(true);
  }

  protected closeNew(created: string | null): void {
    this.newOpen.set(false);
    if (created) this.nav.go(conversationPath(created));
    else this.focusBeforeSwitcher?.focus();
    this.focusBeforeSwitcher = null;
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
