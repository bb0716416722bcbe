//! The sidebar: who I am, rooms and groups, direct messages, people search, and the ways to start a
//! conversation or browse public rooms.
import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  afterNextRender,
  computed,
  inject,
  input,
  output,
  signal,
  viewChild,
} from '@angular/core';
import { NgTemplateOutlet } from '@angular/common';
import { ApiError, type UserSummary } from '../api/api';
import { Attention } from '../core/attention';
import { ChatStore, lastMessage, type Conversation } from '../core/chat-store';
import { describeEvent, joinNames } from '../core/events';
import { Nav, NavLink, conversationPath } from '../core/nav';
import { listTime } from '../core/time';
import { Avatar } from '../ui/avatar';

interface Row {
  key: string;
  path: string;
  kind: Conversation['kind'];
  title: string;
  /** The other person of a direct conversation. */
  peer: string | null;
  online: boolean;
  memberCount: number;
  unread: number;
  preview: string;
  /** "You" or the sender's name before the preview; null for an event line or a direct one. */
  previewFrom: string | null;
  time: string;
  iso: string;
  typing: string | null;
  /** A public room I left (this session): still listed, to join again. */
  left: boolean;
  archived: boolean;
  private: boolean;
}

const SEARCH_DEBOUNCE_MS = 200;

@Component({
  selector: 'app-sidebar',
  imports: [NavLink, Avatar, NgTemplateOutlet],
  templateUrl: './sidebar.html',
  styleUrl: './sidebar.css',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class Sidebar {
  protected readonly store = inject(ChatStore);
  protected readonly attention = inject(Attention);
  private readonly nav = inject(Nav);
  readonly signOut = output<void>();
  readonly newConversation = output<void>();
  /** Whether the room directory is on screen (its link shows as current). */
  readonly directoryOpen = input(false);

  protected readonly query = signal('');
  protected readonly results = signal<UserSummary[] | null>(null);
  protected readonly searching = signal(false);
  protected readonly searchError = signal<string | null>(null);
  /** Show only the contacts who are online now. */
  protected readonly onlineOnly = signal(false);
  private readonly searchBox = viewChild.required<ElementRef<HTMLInputElement>>('search');
  private searchTimer: ReturnType<typeof setTimeout> | null = null;
  private searchSeq = 0;
  private readonly clock = signal(Date.now());

  protected readonly rows = computed<Row[]>(() => {
    const now = new Date(this.clock());
    const me = this.store.me() ?? '';
    const active = this.store.active();
    return this.store.conversations().map((c: Conversation) => {
      const last = lastMessage(c);
      const direct = c.kind === 'direct';
      const event = last?.kind === 'event' ? last.event : undefined;
      const typing = c.typing.filter((name) => name !== me);
      return {
        key: c.key,
        path: conversationPath(c.key),
        kind: c.kind,
        title: this.store.title(c),
        peer: c.peer,
        online: direct && !!c.peer && this.store.isOnline(c.peer),
        memberCount: c.memberCount,
        unread: c.unread,
        preview: event ? describeEvent(event, me) : (last?.body ?? 'No messages yet'),
        previewFrom: !last || event ? null : last.from === me ? 'You' : direct ? null : last.from,
        time: last?.createdAt ? listTime(last.createdAt, now) : '',
        iso: last?.createdAt ?? '',
        // The open conversation shows typing above its composer; once is enough.
        typing:
          typing.length === 0 || c.key === active
            ? null
            : direct
              ? 'typing…'
              : `${joinNames(typing)} ${typing.length === 1 ? 'is' : 'are'} typing…`,
        left: c.standing === 'left',
        archived: c.archived,
        private: c.visibility === 'private',
      };
    });
  });
  protected readonly directRows = computed(() => this.rows().filter((r) => r.kind === 'direct'));
  protected readonly roomRows = computed(() => this.rows().filter((r) => r.kind !== 'direct'));
  protected readonly onlineCount = computed(() => this.directRows().filter((r) => r.online).length);
  /** The online filter is about people: rooms and groups step aside while it is on. */
  protected readonly shownRooms = computed(() => (this.onlineOnly() ? [] : this.roomRows()));
  protected readonly shownDirect = computed(() =>
    this.onlineOnly() ? this.directRows().filter((r) => r.online) : this.directRows(),
  );

  constructor() {
    const timer = setInterval(() => this.clock.set(Date.now()), 60_000);
    inject(DestroyRef).onDestroy(() => {
      clearInterval(timer);
      if (this.searchTimer) clearTimeout(this.searchTimer);
    });
    // Signed in with no conversation open: the first thing to do is find someone. Not on touch
    // screens, where focusing would pop the keyboard up unasked.
    afterNextRender(() => {
      const idle = !document.activeElement || document.activeElement === document.body;
      if (
        idle &&
        this.store.active() === null &&
        !globalThis.matchMedia?.('(pointer: coarse)').matches
      )
        this.focusSearch();
    });
  }

  focusSearch(): void {
    this.searchBox().nativeElement.focus();
  }

  protected toggleOnlineOnly(): void {
    this.onlineOnly.update((on) => !on);
  }

  protected onQuery(value: string): void {
    this.query.set(value);
    if (this.searchTimer) clearTimeout(this.searchTimer);
    const q = value.trim();
    if (!q) {
      this.searchSeq++;
      this.results.set(null);
      this.searching.set(false);
      this.searchError.set(null);
      return;
    }
    this.searching.set(true);
    this.searchTimer = setTimeout(() => void this.search(q), SEARCH_DEBOUNCE_MS);
  }

  private async search(q: string): Promise<void> {
    const seq = ++this.searchSeq;
    try {
      const users = await this.store.searchUsers(q);
      if (seq !== this.searchSeq) return;
      this.results.set(users);
      this.searchError.set(null);
    } catch (e) {
      if (seq !== this.searchSeq) return;
      this.searchError.set(e instanceof ApiError ? e.message : 'Search failed.');
    } finally {
      if (seq === this.searchSeq) this.searching.set(false);
    }
  }

  protected clearSearch(): void {
    this.onQuery('');
  }

  protected onSearchKey(event: KeyboardEvent): void {
    if (event.key === 'Escape' && this.query()) {
      // Handled: an open conversation stays open.
      event.preventDefault();
      this.clearSearch();
    }
    if (event.key === 'Enter') {
      // Enter opens the best match, so a known name is two keystrokes away.
      const first = this.results()?.[0];
      if (first && !this.searching()) {
        event.preventDefault();
        this.clearSearch();
        this.nav.go(`/c/${first.username}`);
      }
    }
  }

  protected unreadLabel(n: number): string {
    return n === 1 ? '1 unread message' : `${n} unread messages`;
  }

  protected membersLabel(n: number): string {
    return n === 1 ? '1 member' : `${n} members`;
  }
}
