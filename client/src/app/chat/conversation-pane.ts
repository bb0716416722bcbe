//! One conversation: header with presence, the message log (paging, jump to latest), typing and composer.
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
import { ChatStore } from '../core/chat-store';
import { NavLink } from '../core/nav';
import { Avatar } from '../ui/avatar';
import { Composer } from './composer';
import { buildTimeline } from './timeline';

/** Within this many pixels of the bottom counts as "at the newest message". */
const BOTTOM_SLACK_PX = 48;
/** Start fetching the previous page this close to the top. */
const TOP_PREFETCH_PX = 160;

@Component({
  selector: 'app-conversation-pane',
  imports: [NavLink, Avatar, Composer],
  templateUrl: './conversation-pane.html',
  styleUrl: './conversation-pane.css',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class ConversationPane {
  protected readonly store = inject(ChatStore);

  readonly peer = input.required<string>();

  private readonly log = viewChild<ElementRef<HTMLElement>>('log');

  protected readonly peerName = computed(() => this.peer().toLowerCase());
  protected readonly conversation = computed(() => this.store.conversation(this.peerName()));
  protected readonly messages = computed(() => {
    const c = this.conversation();
    return c ? [...c.messages, ...c.outbox] : [];
  });
  protected readonly rows = computed(() =>
    buildTimeline(this.messages(), this.store.me() ?? '', {
      unreadFromId: this.conversation()?.unreadFrom,
    }),
  );
  /** My newest confirmed message, which carries the "Seen" / "Sent" receipt. */
  protected readonly receiptFor = computed(() => {
    const me = this.store.me();
    const mine = this.conversation()?.messages.filter((m) => m.from === me) ?? [];
    return mine.at(-1)?.id ?? null;
  });
  protected readonly atBottom = signal(true);
  protected readonly unseen = signal(0);

  private stickToBottom = true;
  private anchor: { key: string; offset: number } | null = null;
  private lastKey: string | null = null;
  private openedPeer: string | null = null;

  constructor() {
    effect((onCleanup) => {
      const peer = this.peerName();
      untracked(() => {
        this.store.open(peer);
        this.stickToBottom = true;
        this.atBottom.set(true);
        this.unseen.set(0);
        this.lastKey = null;
        this.anchor = null;
        this.openedPeer = peer;
      });
      onCleanup(() => this.store.close(peer));
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
    this.store.send(this.peerName(), text);
  }

  protected retry(clientId: string | null): void {
    if (clientId) this.store.retry(this.peerName(), clientId);
  }

  protected typing(): void {
    this.store.typing(this.peerName());
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
    this.store.setViewport(this.peerName(), true);
  }

  private report(el: HTMLElement): void {
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK_PX;
    this.stickToBottom = atBottom;
    this.atBottom.set(atBottom);
    if (atBottom) this.unseen.set(0);
    if (this.openedPeer) this.store.setViewport(this.openedPeer, atBottom);
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
    const added = await this.store.loadOlder(c.peer);
    if (!added) this.anchor = null;
  }
}
