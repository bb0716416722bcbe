//! One conversation: header (presence, or a room's topic and members), the timeline (paging, jump
//! to latest, receipts), typing, the composer or why there is none, and the details panel.
import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  afterRenderEffect,
  computed,
  effect,
  inject,
  input,
  signal,
  untracked,
  viewChild,
} from '@angular/core';
import { ApiError } from '../api/api';
import { ChatStore, seenBy } from '../core/chat-store';
import { joinNames } from '../core/events';
import { Nav, NavLink } from '../core/nav';
import { permissions } from '../core/permissions';
import { Avatar } from '../ui/avatar';
import { Composer } from './composer';
import { MembersPanel } from './members-panel';
import { buildTimeline } from './timeline';

/** Within this many pixels of the bottom counts as "at the newest message". */
const BOTTOM_SLACK_PX = 48;
/** Start fetching the previous page this close to the top. */
const TOP_PREFETCH_PX = 160;

@Component({
  selector: 'app-conversation-pane',
  host: { '(keydown.escape)': 'onEscape($event)' },
  imports: [NavLink, Avatar, Composer, MembersPanel],
  templateUrl: './conversation-pane.html',
  styleUrl: './conversation-pane.css',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class ConversationPane {
  protected readonly store = inject(ChatStore);

  /** The store key: the other person's name for a direct conversation, `#<id>` otherwise. */
  readonly key = input.required<string>();

  private readonly nav = inject(Nav);
  private readonly log = viewChild<ElementRef<HTMLElement>>('log');
  private readonly detailsToggle = viewChild<ElementRef<HTMLButtonElement>>('detailsToggle');

  protected readonly conversation = computed(() => this.store.conversation(this.key()));
  protected readonly direct = computed(() => (this.conversation()?.kind ?? 'direct') === 'direct');
  protected readonly title = computed(() => {
    const c = this.conversation();
    if (!c) return this.key();
    return c.detailsLoaded ? this.store.title(c) : 'Loading…';
  });
  protected readonly can = computed(() => {
    const c = this.conversation();
    return c ? permissions(c) : null;
  });
  /** Whether the timeline is mine to read: a member, or anyone for a public room. */
  protected readonly readable = computed(() => {
    const c = this.conversation();
    return !!c && !c.notFound && c.standing !== 'removed' && c.standing !== 'deleted';
  });
  protected readonly messages = computed(() => {
    const c = this.conversation();
    return c ? [...c.messages, ...c.outbox] : [];
  });
  protected readonly rows = computed(() =>
    buildTimeline(this.messages(), this.store.me() ?? '', {
      unreadFromId: this.conversation()?.unreadFrom,
      showSenders: !this.direct(),
    }),
  );
  /** My newest confirmed message, which carries the "Seen" / "Sent" receipt. */
  protected readonly receiptFor = computed(() => {
    const me = this.store.me();
    const mine =
      this.conversation()?.messages.filter((m) => m.from === me && m.kind === 'text') ?? [];
    return mine.at(-1)?.id ?? null;
  });
  /** The receipt's words: "Seen" in a direct conversation, "Seen by N" in a group, none in a room. */
  protected readonly receipt = computed(() => {
    const c = this.conversation();
    const id = this.receiptFor();
    if (!c || id === null || c.kind === 'room') return null;
    if (c.kind === 'direct') return { text: c.peerReadUpTo >= id ? 'Seen' : 'Sent', names: '' };
    const readers = seenBy(c, id, this.store.me() ?? '');
    return readers.length > 0
      ? { text: `Seen by ${readers.length}`, names: `Seen by ${joinNames(readers)}` }
      : { text: 'Sent', names: '' };
  });
  protected readonly typingText = computed(() => {
    const c = this.conversation();
    const names = c?.typing ?? [];
    if (names.length === 0) return '';
    if (c?.kind === 'direct') return `${c.peer} is typing…`;
    return names.length > 3
      ? 'Several people are typing…'
      : `${joinNames(names)} ${names.length === 1 ? 'is' : 'are'} typing…`;
  });
  protected readonly panelOpen = signal(false);
  protected readonly actionError = signal<string | null>(null);
  protected readonly busy = signal(false);
  protected readonly atBottom = signal(true);
  protected readonly unseen = signal(0);

  private stickToBottom = true;
  private anchor: { key: string; offset: number } | null = null;
  private lastKey: string | null = null;
  private openedKey: string | null = null;

  constructor() {
    effect((onCleanup) => {
      const key = this.key();
      untracked(() => {
        this.store.open(key);
        this.stickToBottom = true;
        this.atBottom.set(true);
        this.unseen.set(0);
        this.lastKey = null;
        this.anchor = null;
        this.openedKey = key;
        this.panelOpen.set(false);
        this.actionError.set(null);
      });
      onCleanup(() => this.store.close(key));
    });

    // The log got shorter or taller (a phone's keyboard, a rotation, a resized window): whoever
    // was reading the newest message keeps seeing it.
    effect((onCleanup) => {
      const el = this.log()?.nativeElement;
      if (!el || typeof ResizeObserver === 'undefined') return;
      const observer = new ResizeObserver(() => {
        if (this.stickToBottom && !this.anchor) el.scrollTop = el.scrollHeight;
      });
      observer.observe(el);
      onCleanup(() => observer.disconnect());
    });

    afterRenderEffect({
      write: () => {
        const rows = this.rows();
        const el = this.log()?.nativeElement;
        if (!el) return;
        const last = rows.at(-1);
        const newKey = last?.key ?? null;
        const grew = newKey !== null && newKey !== this.lastKey;
        if (this.anchor) {
          // Older messages landed above: keep the one that was on top exactly where it was.
          const target = el.querySelector<HTMLElement>(
            `[data-key="${CSS.escape(this.anchor.key)}"]`,
          );
          if (target) el.scrollTop = target.offsetTop - this.anchor.offset;
          if (!target || rows.find((r) => r.kind === 'message')?.key !== this.anchor.key)
            this.anchor = null;
        } else if (grew && last?.kind === 'message' && last.mine && this.lastKey !== null) {
          // Something I just wrote: always show it.
          this.scrollToBottom(el);
        } else if (this.stickToBottom) {
          el.scrollTop = el.scrollHeight;
        } else if (grew && this.lastKey !== null) {
          this.unseen.update((n) => n + 1);
        }
        this.lastKey = newKey;
        untracked(() => this.report(el));
        // Too few messages to scroll: fetch older ones until the log fills or history ends.
        if (el.scrollHeight <= el.clientHeight + 8) void this.loadOlder();
      },
    });
  }

  protected onScroll(): void {
    const el = this.log()?.nativeElement;
    if (!el) return;
    this.report(el);
    if (el.scrollTop < TOP_PREFETCH_PX) void this.loadOlder();
  }

  protected jumpToLatest(): void {
    const el = this.log()?.nativeElement;
    if (el) this.scrollToBottom(el, true);
  }

  protected send(text: string): void {
    this.stickToBottom = true;
    this.store.send(this.key(), text);
  }

  protected retry(clientId: string | null): void {
    if (clientId) this.store.retry(this.key(), clientId);
  }

  protected typing(): void {
    this.store.typing(this.key());
  }

  protected togglePanel(): void {
    this.panelOpen.update((open) => !open);
  }

  protected closePanel(): void {
    this.panelOpen.set(false);
    this.detailsToggle()?.nativeElement.focus();
  }

  /** Esc closes the details panel before it closes the conversation. */
  protected onEscape(event: Event): void {
    if (!this.panelOpen() || event.defaultPrevented) return;
    event.preventDefault();
    this.closePanel();
  }

  /** A conversation I left or was taken out of has nothing more to show: back to the list. */
  protected gone(): void {
    this.panelOpen.set(false);
    const c = this.conversation();
    if (c && c.standing !== 'left') this.nav.go('/');
  }

  protected async join(): Promise<void> {
    const c = this.conversation();
    if (!c?.id) return;
    await this.act(() => this.store.join(c.id!));
  }

  protected async unarchive(): Promise<void> {
    await this.act(() => this.store.updateConversation(this.key(), { archived: false }));
  }

  private async act(action: () => Promise<unknown>): Promise<void> {
    this.busy.set(true);
    this.actionError.set(null);
    try {
      await action();
    } catch (e) {
      this.actionError.set(e instanceof ApiError ? e.message : 'That did not work. Try again.');
    } finally {
      this.busy.set(false);
    }
  }

  private scrollToBottom(el: HTMLElement, smooth = false): void {
    this.stickToBottom = true;
    const reduce = globalThis.matchMedia?.('(prefers-reduced-motion: reduce)').matches;
    if (smooth && !reduce && typeof el.scrollTo === 'function') {
      el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
    } else {
      el.scrollTop = el.scrollHeight;
    }
    this.unseen.set(0);
    this.atBottom.set(true);
    this.store.setViewport(this.key(), true);
  }

  private report(el: HTMLElement): void {
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK_PX;
    this.stickToBottom = atBottom;
    this.atBottom.set(atBottom);
    if (atBottom) this.unseen.set(0);
    if (this.openedKey) this.store.setViewport(this.openedKey, atBottom);
  }

  private async loadOlder(): Promise<void> {
    const c = this.conversation();
    const el = this.log()?.nativeElement;
    if (!c || !el || !c.historyLoaded || !c.hasMore || c.loadingHistory) return;
    // Remember where the first visible message sits so the view stays put once older ones land.
    const first = el.querySelector<HTMLElement>('[data-key]');
    const anchor = first
      ? { key: first.dataset['key']!, offset: first.offsetTop - el.scrollTop }
      : null;
    const wasAtBottom = this.stickToBottom;
    this.anchor = wasAtBottom ? null : anchor;
    const added = await this.store.loadOlder(c.key);
    if (!added) this.anchor = null;
  }
}
