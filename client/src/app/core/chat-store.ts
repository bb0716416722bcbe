//! All chat state: conversations of every kind with their members, messages and events, the
//! outbox, presence, typing and read markers.
import { DestroyRef, Injectable, computed, effect, inject, signal, untracked } from '@angular/core';
import {
  Api,
  ApiError,
  type ConversationDto,
  type Message,
  type RoomDto,
  type UserSummary,
} from '../api/api';
import { describeEvent } from './events';
import { newClientId } from './ids';
import {
  EVENT_TYPES,
  Realtime,
  isEventFrame,
  type ChangeEvent,
  type ClientFrame,
  type ConversationKind,
  type EventFrame,
  type Role,
  type ServerFrame,
  type Visibility,
} from './realtime';
import { Session } from './session';

export type DeliveryState = 'sending' | 'sent' | 'failed';

export interface ChatMessage {
  /** Stable across the sending → sent transition so the view never re-creates the bubble. */
  readonly key: string;
  readonly id: number | null;
  readonly conversationId: number | null;
  /** `event`: a change of the conversation, shown as a line of the timeline. */
  readonly kind: 'text' | 'event';
  readonly from: string;
  /** The other person, in a direct conversation only. */
  readonly to: string;
  readonly body: string;
  readonly createdAt: string;
  readonly clientId: string | null;
  readonly state: DeliveryState;
  readonly error?: string;
  readonly event?: ChangeEvent;
}

export interface Member {
  readonly username: string;
  readonly role: Role;
  /** How far they have read (for "Seen by" in groups). */
  readonly readUpTo: number;
}

/**
 * How I stand towards a conversation: in it; looking at a public room I am not in; out of a
 * public room I left (still readable); removed from a private one; or it was deleted.
 */
export type Standing = 'member' | 'outsider' | 'left' | 'removed' | 'deleted';

export interface Conversation {
  /** The other person's name for a direct conversation, `#<id>` for any other. */
  readonly key: string;
  /** Null for a direct conversation that has no message yet. */
  readonly id: number | null;
  readonly kind: ConversationKind;
  /** The other person of a direct conversation; null otherwise. */
  readonly peer: string | null;
  readonly name: string | null;
  readonly topic: string | null;
  readonly visibility: Visibility | null;
  readonly archived: boolean;
  /** Owners first, then admins, then members, by name: everyone, or a large room's first ones. */
  readonly members: readonly Member[];
  readonly memberCount: number;
  readonly myRole: Role | null;
  readonly standing: Standing;
  /** Who removed me or deleted it (null: an administrator), while `standing` says so. */
  readonly standingBy: string | null;
  /** Whether name, kind and members are known (a conversation opened by id starts without). */
  readonly detailsLoaded: boolean;
  /** The stream id its details are current at: an older snapshot must not undo a newer event. */
  readonly detailsAt: number;
  /** The newest stream id known in it, message or event: the list sorts by it. */
  readonly lastActivity: number;
  readonly unread: number;
  /** Confirmed messages and events, ascending by server id, without duplicates. */
  readonly messages: readonly ChatMessage[];
  /** My messages not yet confirmed by the server, in the order they were written. */
  readonly outbox: readonly ChatMessage[];
  readonly historyLoaded: boolean;
  readonly loadingHistory: boolean;
  readonly hasMore: boolean;
  readonly loadError: string | null;
  readonly notFound: boolean;
  /** The newest entry I have reported as read. */
  readonly readUpTo: number;
  /** Direct conversations: the newest of my messages the peer has read. */
  readonly peerReadUpTo: number;
  /**
   * The newest message id the server's `unread` count (from the conversation list) covered: newer
   * messages are counted here as they arrive, older ones never again.
   */
  readonly countedThrough: number;
  /** Who is typing now. */
  readonly typing: readonly string[];
  /** Id of the first message that was unread when I opened the conversation (the read marker). */
  readonly unreadFrom: number | null;
}

/** How an incoming message reached us; only live and sync traffic counts as new. */
type Origin = 'live' | 'history' | 'own';

const ACK_TIMEOUT_MS = 10_000;
const TYPING_SEND_EVERY_MS = 3_000;
const TYPING_SHOWN_MS = 6_000;
/** Coalesces list refreshes that several frames ask for at once. */
const LIST_REFRESH_DELAY_MS = 300;
export const PAGE_SIZE = 50;

const ROLE_ORDER: Record<Role, number> = { owner: 0, admin: 1, member: 2 };

function isChange(value: unknown): value is ChangeEvent {
  const type = (value as { type?: unknown } | null)?.type;
  return typeof type === 'string' && (EVENT_TYPES as readonly string[]).includes(type);
}

export function fromServer(message: Message): ChatMessage {
  const event = message.kind === 'event' && isChange(message.event) ? message.event : undefined;
  return {
    key: !event && message.client_id ? `c:${message.client_id}` : `m:${message.id}`,
    id: message.id,
    conversationId: message.conversation_id,
    kind: event ? 'event' : 'text',
    from: message.from,
    to: message.to ?? '',
    body: message.body,
    createdAt: message.created_at,
    clientId: event ? null : (message.client_id ?? null),
    state: 'sent',
    ...(event ? { event } : {}),
  };
}

export function fromEventFrame(frame: EventFrame): ChatMessage {
  const { id, conversation_id, created_at, ...change } = frame;
  const event = change as ChangeEvent;
  return {
    key: `m:${id}`,
    id,
    conversationId: conversation_id,
    kind: 'event',
    from: event.by ?? '',
    to: '',
    body: describeEvent(event, null),
    createdAt: created_at,
    clientId: null,
    state: 'sent',
    event,
  };
}

export function keyOf(kind: ConversationKind, id: number, peer: string | null): string {
  return kind === 'direct' && peer ? peer : `#${id}`;
}

function emptyConversation(key: string): Conversation {
  const direct = !key.startsWith('#');
  return {
    key,
    id: direct ? null : Number(key.slice(1)),
    kind: direct ? 'direct' : 'group',
    peer: direct ? key : null,
    name: null,
    topic: null,
    visibility: null,
    archived: false,
    members: [],
    memberCount: direct ? 2 : 0,
    myRole: direct ? 'member' : null,
    standing: 'member',
    standingBy: null,
    detailsLoaded: direct,
    detailsAt: 0,
    lastActivity: 0,
    unread: 0,
    messages: [],
    outbox: [],
    historyLoaded: false,
    loadingHistory: false,
    hasMore: false,
    loadError: null,
    notFound: false,
    readUpTo: 0,
    peerReadUpTo: 0,
    countedThrough: 0,
    typing: [],
    unreadFrom: null,
  };
}

export function sortMembers(members: readonly Member[]): Member[] {
  return [...members].sort(
    (a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || a.username.localeCompare(b.username),
  );
}

/** Inserts messages into an id-ordered list, skipping ids already present. */
export function mergeById(
  existing: readonly ChatMessage[],
  incoming: readonly ChatMessage[],
): ChatMessage[] {
  const byId = new Map<number, ChatMessage>();
  for (const m of existing) if (m.id !== null) byId.set(m.id, m);
  for (const m of incoming) if (m.id !== null && !byId.has(m.id)) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
}

/** A confirmed text message someone other than `me` wrote: what unread counts are made of. */
function fromOthers(m: ChatMessage, me: string): boolean {
  return m.kind === 'text' && m.from !== me && m.id !== null;
}

/** The id of the first of the last `count` messages others wrote, or null. */
export function unreadStart(
  messages: readonly ChatMessage[],
  me: string,
  count: number,
): number | null {
  if (count <= 0) return null;
  const theirs = messages.filter((m) => fromOthers(m, me));
  if (theirs.length === 0) return null;
  return theirs[Math.max(0, theirs.length - count)].id;
}

/** How many messages others wrote in the list have an id above `after`. */
export function countFrom(messages: readonly ChatMessage[], me: string, after: number): number {
  let n = 0;
  for (const m of messages) if (fromOthers(m, me) && m.id! > after) n++;
  return n;
}

/** Whether the loaded messages include every message of the conversation newer than `id`. */
export function holdsAllAfter(c: Conversation, id: number): boolean {
  if (!c.historyLoaded) return false;
  return !c.hasMore || (c.messages[0]?.id ?? Number.POSITIVE_INFINITY) <= id;
}

/** What the list previews: the newest text (queued ones first), else the newest event. */
export function lastMessage(c: Conversation): ChatMessage | null {
  const queued = c.outbox.at(-1);
  if (queued) return queued;
  for (let i = c.messages.length - 1; i >= 0; i--)
    if (c.messages[i].kind === 'text') return c.messages[i];
  return c.messages.at(-1) ?? null;
}

/** The members other than me who have read up to `messageId`. */
export function seenBy(c: Conversation, messageId: number, me: string): string[] {
  return c.members
    .filter((m) => m.username !== me && m.readUpTo >= messageId)
    .map((m) => m.username);
}

/** A room's name; a group's name or its members' names; the other person of a direct one. */
export function conversationTitle(c: Conversation, me: string | null): string {
  if (c.kind === 'direct') return c.peer ?? '';
  if (c.name) return c.name;
  if (c.kind === 'room') return 'Room';
  const others = c.members.filter((m) => m.username !== me).map((m) => m.username);
  if (others.length === 0) return 'Group';
  const shown = others.slice(0, 3);
  const more = Math.max(c.memberCount - 1, others.length) - shown.length;
  if (more > 0) return `${shown.join(', ')} and ${more} more`;
  return shown.length === 1 ? shown[0] : `${shown.slice(0, -1).join(', ')} and ${shown.at(-1)}`;
}

/** Whoever wrote to or from me: the other person of a direct message. */
function peerOf(m: ChatMessage, me: string): string {
  return m.from === me ? m.to : m.from;
}

/**
 * A conversation after `change`, committed at stream id `at` (0 for a change applied before its
 * event arrives, such as my own leaving). Counting is written so that applying the same change
 * twice (locally, then from its event) comes to the same result where the members are known.
 */
export function applyChange(
  c: Conversation,
  change: ChangeEvent,
  me: string,
  at: number,
): Conversation {
  const next: Conversation = { ...c, detailsAt: Math.max(c.detailsAt, at) };
  switch (change.type) {
    case 'conversation_created': {
      const members = sortMembers(change.members.map((m) => ({ ...m, readUpTo: 0 })));
      const mine = members.find((m) => m.username === me);
      return {
        ...next,
        kind: change.kind,
        peer: null,
        name: change.name ?? null,
        topic: change.topic || null,
        visibility: change.visibility ?? null,
        archived: false,
        members,
        memberCount: members.length,
        myRole: mine?.role ?? null,
        standing: mine ? 'member' : 'outsider',
        standingBy: null,
        detailsLoaded: true,
      };
    }
    case 'member_added': {
      const known = new Set(c.members.map((m) => m.username));
      const fresh = change.members.filter((m) => !known.has(m.username));
      const complete = c.detailsLoaded && c.members.length >= c.memberCount;
      const mine = change.members.find((m) => m.username === me);
      return {
        ...next,
        members: sortMembers([...c.members, ...fresh.map((m) => ({ ...m, readUpTo: 0 }))]),
        memberCount: c.memberCount + (complete ? fresh.length : change.members.length),
        ...(mine ? { myRole: mine.role, standing: 'member' as const, standingBy: null } : {}),
      };
    }
    case 'member_removed': {
      const listed = c.members.some((m) => m.username === change.username);
      const complete = c.members.length >= c.memberCount;
      const members = c.members.filter((m) => m.username !== change.username);
      if (change.username !== me) {
        const memberCount = listed || !complete ? Math.max(0, c.memberCount - 1) : c.memberCount;
        return { ...next, members, memberCount };
      }
      const readable = c.kind === 'room' && c.visibility === 'public';
      const wasIn = c.myRole !== null;
      const gone: Partial<Conversation> = readable
        ? {}
        : { messages: [], outbox: [], historyLoaded: false, hasMore: false, unreadFrom: null };
      return {
        ...next,
        ...gone,
        members,
        memberCount: wasIn ? Math.max(0, c.memberCount - 1) : c.memberCount,
        myRole: null,
        standing: readable ? 'left' : 'removed',
        standingBy: change.by,
        unread: 0,
        typing: [],
      };
    }
    case 'conversation_updated':
      return {
        ...next,
        ...(change.name !== undefined ? { name: change.name } : {}),
        ...(change.topic !== undefined ? { topic: change.topic || null } : {}),
        ...(change.archived !== undefined ? { archived: change.archived } : {}),
      };
    case 'role_changed':
      return {
        ...next,
        members: sortMembers(
          c.members.map((m) => (m.username === change.username ? { ...m, role: change.role } : m)),
        ),
        ...(change.username === me ? { myRole: change.role } : {}),
      };
    case 'conversation_removed':
      return {
        ...next,
        messages: [],
        outbox: [],
        historyLoaded: false,
        hasMore: false,
        unreadFrom: null,
        myRole: null,
        standing: 'deleted',
        standingBy: change.by,
        unread: 0,
        typing: [],
      };
  }
}

/** Whether the sidebar lists it: what I am in (or left, for a public room), once known. */
function listed(c: Conversation, active: string | null): boolean {
  if (c.notFound || !c.detailsLoaded) return false;
  if (c.standing === 'removed' || c.standing === 'deleted') return false;
  if (c.standing === 'outsider') return c.key === active;
  if (c.kind !== 'direct') return true;
  return c.messages.length > 0 || c.outbox.length > 0 || c.key === active;
}

@Injectable({ providedIn: 'root' })
export class ChatStore {
  private readonly api = inject(Api);
  private readonly realtime = inject(Realtime);
  private readonly session = inject(Session);

  private readonly state = signal<Record<string, Conversation>>({});
  /** Users the server reported online (people I share a conversation with, search results). */
  private readonly onlineUsers = signal<ReadonlySet<string>>(new Set());
  private readonly viewport = signal<{ key: string | null; atBottom: boolean }>({
    key: null,
    atBottom: true,
  });
  private readonly pageVisible = signal(globalThis.document?.visibilityState !== 'hidden');

  readonly me = this.session.username;
  readonly connection = this.realtime.state;
  readonly retryAt = this.realtime.retryAt;
  readonly listLoaded = signal(false);
  readonly listError = signal<string | null>(null);
  /** The key of the conversation on screen. */
  readonly active = signal<string | null>(null);

  /** Conversations to list, most recent activity first. */
  readonly conversations = computed(() => {
    const active = this.active();
    return Object.values(this.state())
      .filter((c) => listed(c, active))
      .sort((a, b) => this.recency(b) - this.recency(a) || a.key.localeCompare(b.key));
  });
  readonly totalUnread = computed(() =>
    Object.values(this.state()).reduce((sum, c) => sum + c.unread, 0),
  );
  /** Conversation id → key, for frames that name conversations by id. */
  private readonly keysById = computed(() => {
    const map = new Map<number, string>();
    for (const c of Object.values(this.state())) if (c.id !== null) map.set(c.id, c.key);
    return map;
  });

  private started = false;
  private listFetchedAt = 0;
  private syncCursor = 0;
  private everReady = false;
  private readonly seen = new Set<number>();
  private readonly ackTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly typingTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private listRefreshTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly typingSentAt = new Map<string, number>();
  private readonly readInFlight = new Map<string, number>();
  private readonly unreadAtOpen = new Map<string, number>();
  private readonly detailsInFlight = new Set<number>();
  /** Unsent text per conversation; gone at sign-out with everything else. */
  private readonly drafts = new Map<string, string>();
  private readonly incomingHandlers = new Set<(m: ChatMessage, key: string) => void>();
  private unsubscribers: (() => void)[] = [];

  constructor() {
    const onVisibility = () => {
      const visible = document.visibilityState !== 'hidden';
      this.pageVisible.set(visible);
      // Reads on my other devices arrive live as `read_marker` frames; this is the fallback for
      // anything a sleeping tab may have missed.
      if (visible && this.started && Date.now() - this.listFetchedAt > 30_000)
        void this.refreshList();
    };
    globalThis.document?.addEventListener('visibilitychange', onVisibility);
    inject(DestroyRef).onDestroy(() => {
      globalThis.document?.removeEventListener('visibilitychange', onVisibility);
      this.stop();
    });

    // Without a live socket nobody's presence is known; `online_users` restores it on reconnect.
    effect(() => {
      if (this.realtime.state() === 'open') return;
      untracked(() => {
        if (this.onlineUsers().size > 0) this.onlineUsers.set(new Set());
      });
    });

    // Whatever is on screen, at the bottom of the list, in a visible tab, counts as read.
    effect(() => {
      const { key, atBottom } = this.viewport();
      if (!key || !atBottom || !this.pageVisible()) return;
      const c = this.state()[key];
      if (c) this.markRead(c);
    });
  }

  conversation(key: string): Conversation | undefined {
    return this.state()[key];
  }

  /** The key a route names: `#<id>` of a direct conversation becomes the other person's name. */
  resolve(key: string): string {
    if (!key.startsWith('#')) return key;
    return this.keysById().get(Number(key.slice(1))) ?? key;
  }

  isOnline(username: string): boolean {
    return this.onlineUsers().has(username);
  }

  title(c: Conversation): string {
    return conversationTitle(c, this.me());
  }

  /** Called for each new message from someone else (live or caught up), e.g. for notifications. */
  onIncoming(handler: (m: ChatMessage, key: string) => void): () => void {
    this.incomingHandlers.add(handler);
    return () => this.incomingHandlers.delete(handler);
  }

  async start(): Promise<void> {
    const token = this.session.token();
    if (this.started || !token) return;
    this.started = true;
    this.unsubscribers = [
      this.realtime.onFrame((frame) => this.handleFrame(frame)),
      this.realtime.onRejected(() => void this.api.me().catch(() => undefined)),
    ];
    await this.refreshList();
    if (this.started) this.realtime.start(token);
  }

  stop(): void {
    this.started = false;
    this.realtime.stop();
    for (const off of this.unsubscribers) off();
    this.unsubscribers = [];
    for (const t of this.ackTimers.values()) clearTimeout(t);
    for (const t of this.typingTimers.values()) clearTimeout(t);
    if (this.listRefreshTimer) clearTimeout(this.listRefreshTimer);
    this.listRefreshTimer = null;
    this.ackTimers.clear();
    this.typingTimers.clear();
    this.typingSentAt.clear();
    this.readInFlight.clear();
    this.unreadAtOpen.clear();
    this.detailsInFlight.clear();
    this.drafts.clear();
    this.seen.clear();
    this.syncCursor = 0;
    this.everReady = false;
    this.state.set({});
    this.onlineUsers.set(new Set());
    this.listLoaded.set(false);
    this.active.set(null);
  }

  reconnect(): void {
    this.realtime.reconnectNow();
  }

  /** Loads every conversation I am in, with members, read markers and unread counts. */
  async refreshList(): Promise<void> {
    this.listFetchedAt = Date.now();
    try {
      const list = await this.api.conversations();
      if (!this.started) return;
      this.notePresence(list);
      for (const summary of list) this.applySummary(summary);
      this.listError.set(null);
      this.listLoaded.set(true);
    } catch (e) {
      this.listError.set(e instanceof ApiError ? e.message : 'Could not load conversations.');
    }
  }

  /** Shows a conversation, loading its newest page the first time. */
  open(key: string): void {
    this.active.set(key);
    const c = this.ensure(key);
    // Members (all of a group's, a room's first 500) for the members panel and "Seen by".
    if (c.id !== null && c.kind !== 'direct') void this.fetchDetails(c.id);
    if (c.standing === 'removed' || c.standing === 'deleted') return;
    if (c.historyLoaded) {
      const me = this.me() ?? '';
      this.patch(key, { unreadFrom: c.unreadFrom ?? unreadStart(c.messages, me, c.unread) });
    } else {
      this.unreadAtOpen.set(key, c.unread);
      if (!c.loadingHistory) void this.loadLatest(key);
    }
  }

  close(key: string): void {
    if (this.active() === key) this.active.set(null);
    this.unreadAtOpen.delete(key);
    if (this.state()[key]?.unreadFrom != null) this.patch(key, { unreadFrom: null });
    if (this.viewport().key === key) this.viewport.set({ key: null, atBottom: true });
  }

  /** The conversation view reports whether its newest message is in view. */
  setViewport(key: string, atBottom: boolean): void {
    const v = this.viewport();
    if (v.key !== key || v.atBottom !== atBottom) this.viewport.set({ key, atBottom });
  }

  async loadLatest(key: string): Promise<void> {
    this.patch(key, { loadingHistory: true, loadError: null });
    try {
      const page = await this.page(key, { limit: PAGE_SIZE });
      const incoming = page.messages.map(fromServer);
      this.ingestMany(key, incoming);
      const c = this.state()[key]!;
      const unreadFrom =
        c.unreadFrom ??
        unreadStart(c.messages, this.me() ?? '', this.unreadAtOpen.get(key) ?? c.unread);
      this.unreadAtOpen.delete(key);
      this.patch(key, {
        historyLoaded: true,
        hasMore: page.has_more,
        loadingHistory: false,
        unreadFrom,
      });
    } catch (e) {
      const notFound =
        e instanceof ApiError &&
        (e.code === 'user_not_found' || e.code === 'conversation_not_found');
      this.patch(key, {
        loadingHistory: false,
        notFound,
        loadError: notFound ? null : e instanceof ApiError ? e.message : 'Could not load messages.',
      });
    }
  }

  /** Loads the page before the oldest message shown; resolves to whether anything was added. */
  async loadOlder(key: string): Promise<boolean> {
    const c = this.state()[key];
    if (!c || !c.hasMore || c.loadingHistory) return false;
    const oldest = c.messages[0]?.id;
    if (oldest == null) return false;
    this.patch(key, { loadingHistory: true });
    try {
      const page = await this.page(key, { before: oldest, limit: PAGE_SIZE });
      this.ingestMany(key, page.messages.map(fromServer));
      this.patch(key, { hasMore: page.has_more, loadingHistory: false });
      return page.messages.length > 0;
    } catch (e) {
      this.patch(key, {
        loadingHistory: false,
        loadError: e instanceof ApiError ? e.message : 'Could not load messages.',
      });
      return false;
    }
  }

  send(key: string, text: string): void {
    const me = this.me();
    const body = text.trim();
    const c = this.ensure(key);
    if (!me || !body) return;
    const clientId = newClientId();
    const message: ChatMessage = {
      key: `c:${clientId}`,
      id: null,
      conversationId: c.id,
      kind: 'text',
      from: me,
      to: c.kind === 'direct' ? (c.peer ?? key) : '',
      body,
      createdAt: new Date().toISOString(),
      clientId,
      state: 'sending',
    };
    this.update(key, (c) => ({ ...c, outbox: [...c.outbox, message] }));
    this.typingSentAt.delete(key);
    this.dispatch(message);
  }

  /** Sends a failed message again with the same client id, so the server never stores it twice. */
  retry(key: string, clientId: string): void {
    const message = this.state()[key]?.outbox.find((m) => m.clientId === clientId);
    if (!message) return;
    this.setOutboxState(key, clientId, 'sending');
    this.dispatch({ ...message, state: 'sending' });
  }

  /** Tells the others I am typing, at most every few seconds. */
  typing(key: string): void {
    const now = Date.now();
    if (now - (this.typingSentAt.get(key) ?? 0) < TYPING_SEND_EVERY_MS) return;
    const c = this.state()[key];
    const frame: ClientFrame | null =
      !c || c.kind === 'direct'
        ? { type: 'typing', to: c?.peer ?? key }
        : c.id !== null
          ? { type: 'typing', conversation_id: c.id }
          : null;
    if (frame && this.realtime.send(frame)) this.typingSentAt.set(key, now);
  }

  draft(key: string): string {
    return this.drafts.get(key) ?? '';
  }

  setDraft(key: string, text: string): void {
    if (!this.started) return; // the composer saving its text while the session is torn down
    if (text) this.drafts.set(key, text);
    else this.drafts.delete(key);
  }

  searchUsers(q: string): Promise<UserSummary[]> {
    return this.api.users(q, 20).then((users) => {
      this.onlineUsers.update((set) => {
        const next = new Set(set);
        for (const u of users) u.online ? next.add(u.username) : next.delete(u.username);
        return next;
      });
      return users.filter((u) => u.username !== this.me());
    });
  }

  // ---- groups and rooms ------------------------------------------------------------------

  /** Starts a group with these people (besides me); resolves to its key. */
  async createGroup(usernames: string[], name?: string): Promise<string> {
    const dto = await this.api.createConversation({
      kind: 'group',
      members: usernames,
      ...(name?.trim() ? { name: name.trim() } : {}),
    });
    return this.applySummary(dto);
  }

  async createRoom(room: {
    name: string;
    topic?: string;
    visibility: Visibility;
    members?: string[];
  }): Promise<string> {
    const dto = await this.api.createConversation({
      kind: 'room',
      name: room.name.trim(),
      ...(room.topic?.trim() ? { topic: room.topic.trim() } : {}),
      visibility: room.visibility,
      members: room.members ?? [],
    });
    return this.applySummary(dto);
  }

  /** Renames, sets the topic, archives or unarchives. */
  async updateConversation(
    key: string,
    patch: { name?: string; topic?: string; archived?: boolean },
  ): Promise<void> {
    this.applySummary(await this.api.updateConversation(this.idOf(key), patch));
  }

  async addMembers(key: string, usernames: string[]): Promise<void> {
    this.applySummary(await this.api.addMembers(this.idOf(key), usernames));
  }

  async removeMember(key: string, username: string): Promise<void> {
    const id = this.idOf(key);
    await this.api.removeMember(id, username);
    const me = this.me();
    if (username === me) {
      // My own sockets hear of it too; applying it now keeps the screen from lagging behind.
      this.update(key, (c) => applyChange(c, { type: 'member_removed', by: me, username }, me, 0));
    } else {
      await this.fetchDetails(id);
    }
  }

  leave(key: string): Promise<void> {
    return this.removeMember(key, this.me() ?? '');
  }

  async setRole(key: string, username: string, role: Role): Promise<void> {
    this.applySummary(await this.api.setRole(this.idOf(key), username, role));
  }

  /** Joins a public room; resolves to its key. */
  async join(id: number): Promise<string> {
    return this.applySummary(await this.api.join(id));
  }

  async deleteRoom(key: string): Promise<void> {
    await this.api.deleteConversation(this.idOf(key));
    const me = this.me() ?? '';
    this.update(key, (c) => applyChange(c, { type: 'conversation_removed', by: me }, me, 0));
  }

  searchRooms(q: string): Promise<RoomDto[]> {
    return this.api.rooms(q, 50);
  }

  // ---- internals -------------------------------------------------------------------------

  private idOf(key: string): number {
    const id = this.state()[key]?.id ?? (key.startsWith('#') ? Number(key.slice(1)) : null);
    if (id === null) throw new ApiError(404, 'conversation_not_found', 'No such conversation.');
    return id;
  }

  private keyForId(id: number): string {
    return this.keysById().get(id) ?? `#${id}`;
  }

  private page(key: string, query: { before?: number; limit?: number }) {
    const c = this.state()[key];
    return c && c.kind === 'direct'
      ? this.api.messages(c.peer ?? key, query)
      : this.api.conversationMessages(this.idOf(key), query);
  }

  private recency(c: Conversation): number {
    if (c.outbox.length > 0) return Number.MAX_SAFE_INTEGER;
    const activity = Math.max(c.lastActivity, c.messages.at(-1)?.id ?? 0);
    return activity > 0 ? activity : Number.MAX_SAFE_INTEGER - 1;
  }

  private ensure(key: string): Conversation {
    const existing = this.state()[key];
    if (existing) return existing;
    const created = emptyConversation(key);
    this.state.update((s) => ({ ...s, [key]: created }));
    return created;
  }

  private update(key: string, change: (c: Conversation) => Conversation): void {
    this.state.update((s) => {
      // A `#<id>` that turned out to be a direct conversation lives under the other person's name.
      if (!s[key] && key.startsWith('#')) {
        const id = Number(key.slice(1));
        const known = Object.values(s).find((c) => c.id === id);
        if (known) key = known.key;
      }
      return { ...s, [key]: change(s[key] ?? emptyConversation(key)) };
    });
  }

  private patch(key: string, values: Partial<Conversation>): void {
    this.update(key, (c) => ({ ...c, ...values }));
  }

  /** Who is online, as the conversations (as far as each may tell) report it. */
  private notePresence(list: ConversationDto[]): void {
    const me = this.me();
    const mentioned = new Map<string, boolean>();
    for (const c of list)
      for (const m of c.members)
        if (m.username !== me) mentioned.set(m.username, m.online || !!mentioned.get(m.username));
    this.onlineUsers.update((set) => {
      const next = new Set(set);
      for (const [name, online] of mentioned) online ? next.add(name) : next.delete(name);
      return next;
    });
  }

  /** Takes in a conversation as the server reports it; returns its key. */
  private applySummary(dto: ConversationDto): string {
    const me = this.me() ?? '';
    const peer =
      dto.kind === 'direct' ? (dto.members.find((m) => m.username !== me)?.username ?? null) : null;
    const key = keyOf(dto.kind, dto.id, peer);
    const last = dto.last_message ? fromServer(dto.last_message) : null;
    if (last?.id != null) this.seen.add(last.id);
    // Once the socket has been up, only the socket's own stream moves the cursor, so a list
    // fetched mid-outage can never make a later sync skip a message or an event.
    if (!this.everReady) this.syncCursor = Math.max(this.syncCursor, dto.last_activity_id);
    const readUpToNow = Math.max(this.state()[key]?.readUpTo ?? 0, dto.read_up_to);
    if (readUpToNow > (this.readInFlight.get(key) ?? 0)) this.readInFlight.set(key, readUpToNow);
    const view = this.viewport();
    const watching = key === view.key && view.atBottom;

    this.state.update((s) => {
      const next = { ...s };
      // A direct conversation opened by its id before it was known by the other person's name.
      const byId = `#${dto.id}`;
      const placeholder = key !== byId ? s[byId] : undefined;
      if (placeholder) delete next[byId];
      let c = s[key] ?? placeholder ?? emptyConversation(key);
      if (dto.last_activity_id >= c.detailsAt || !c.detailsLoaded) {
        const known = new Map(c.members.map((m) => [m.username, m.readUpTo]));
        const members = dto.members.map((m) => ({
          username: m.username,
          role: m.role,
          readUpTo: Math.max(m.read_up_to, known.get(m.username) ?? 0),
        }));
        c = {
          ...c,
          key,
          id: dto.id,
          kind: dto.kind,
          peer,
          name: dto.name ?? null,
          topic: dto.topic || null,
          visibility: dto.visibility ?? null,
          archived: dto.archived,
          members,
          memberCount: dto.member_count,
          myRole: dto.my_role ?? null,
          standing: dto.my_role ? 'member' : c.standing === 'left' ? 'left' : 'outsider',
          standingBy: dto.my_role ? null : c.standingBy,
          detailsLoaded: true,
          detailsAt: Math.max(c.detailsAt, dto.last_activity_id),
          notFound: false,
        };
      }
      const peerRead = peer ? (dto.members.find((m) => m.username === peer)?.read_up_to ?? 0) : 0;
      // An older snapshot of a conversation I am out of brings nothing back into it.
      const out = c.standing === 'removed' || c.standing === 'deleted';
      const messages = last && !out ? mergeById(c.messages, [last]) : c.messages;
      const newest = last?.id ?? 0;
      // The server counted up to `newest` (nothing, if I have read past it since); messages
      // that arrived after its snapshot are counted here, and will not be counted again.
      const counted = newest > readUpToNow ? Number(dto.unread) : 0;
      const later = countFrom(messages, me, Math.max(newest, readUpToNow));
      next[key] = {
        ...c,
        messages,
        readUpTo: readUpToNow,
        peerReadUpTo: Math.max(c.peerReadUpTo, peerRead),
        unread: !dto.my_role || out ? 0 : watching ? c.unread : counted + later,
        countedThrough: Math.max(c.countedThrough, newest),
        lastActivity: Math.max(c.lastActivity, dto.last_activity_id),
      };
      return next;
    });
    return key;
  }

  /** Loads one conversation's details and members (a new one, or the one opened). */
  private async fetchDetails(id: number): Promise<void> {
    if (this.detailsInFlight.has(id)) return;
    this.detailsInFlight.add(id);
    try {
      const dto = await this.api.conversation(id);
      if (!this.started) return;
      this.notePresence([dto]);
      this.applySummary(dto);
    } catch (e) {
      const key = this.keyForId(id);
      if (
        e instanceof ApiError &&
        e.code === 'conversation_not_found' &&
        this.started &&
        !this.state()[key]?.detailsLoaded
      )
        this.patch(key, { notFound: true });
    } finally {
      this.detailsInFlight.delete(id);
    }
  }

  /** I read `key` up to `upTo` on another device. */
  private readElsewhere(key: string, upTo: number): void {
    const c = this.state()[key];
    if (!c || upTo <= c.readUpTo) return;
    // The server has it already: never send it back.
    if (upTo > (this.readInFlight.get(key) ?? 0)) this.readInFlight.set(key, upTo);
    // Everything above the list's snapshot is held here, so the rest can be counted exactly;
    // a marker inside the snapshot needs the server's count unless the whole tail is loaded.
    const exact = upTo >= c.countedThrough || holdsAllAfter(c, upTo);
    const unread = exact
      ? Math.min(c.unread, countFrom(c.messages, this.me() ?? '', upTo))
      : c.unread;
    this.patch(key, {
      readUpTo: upTo,
      unread,
      unreadFrom: unread === 0 && this.active() !== key ? null : c.unreadFrom,
    });
    if (!exact) this.refreshListSoon();
  }

  private refreshListSoon(): void {
    if (this.listRefreshTimer) return;
    this.listRefreshTimer = setTimeout(() => {
      this.listRefreshTimer = null;
      if (this.started) void this.refreshList();
    }, LIST_REFRESH_DELAY_MS);
  }

  private handleFrame(frame: ServerFrame): void {
    if (isEventFrame(frame)) {
      this.applyEvent(frame);
      return;
    }
    switch (frame.type) {
      case 'ready': {
        const reconnect = this.everReady;
        this.everReady = true;
        this.realtime.send({ type: 'sync', after: this.syncCursor });
        // Anything still waiting for an ack goes again with the same client id.
        for (const c of Object.values(this.state())) {
          for (const m of c.outbox) if (m.state === 'sending') this.dispatch(m);
        }
        if (reconnect) void this.refreshList();
        break;
      }
      case 'online_users':
        this.onlineUsers.set(new Set(frame.users));
        break;
      case 'presence':
        this.onlineUsers.update((set) => {
          const next = new Set(set);
          frame.online ? next.add(frame.username) : next.delete(frame.username);
          return next;
        });
        break;
      case 'ack':
        this.clearAckTimer(frame.client_id);
        this.advanceCursor(frame.message.id);
        this.ingest(fromServer(frame.message), 'own');
        break;
      case 'receive_message':
        this.advanceCursor(frame.message.id);
        this.ingest(fromServer(frame.message), 'live');
        break;
      case 'sync_done':
        this.advanceCursor(frame.last_id);
        break;
      case 'typing': {
        const key = this.keyForId(frame.conversation_id);
        if (this.state()[key]) this.showTyping(key, frame.from);
        break;
      }
      case 'read': {
        const key = this.keyForId(frame.conversation_id);
        const c = this.state()[key];
        if (!c || frame.peer === this.me()) break;
        this.update(key, (c) => ({
          ...c,
          members: c.members.map((m) =>
            m.username === frame.peer ? { ...m, readUpTo: Math.max(m.readUpTo, frame.up_to) } : m,
          ),
          peerReadUpTo:
            c.kind === 'direct' ? Math.max(c.peerReadUpTo, frame.up_to) : c.peerReadUpTo,
        }));
        break;
      }
      case 'read_marker':
        this.readElsewhere(frame.peer ?? this.keyForId(frame.conversation_id), frame.up_to);
        break;
      case 'error':
        if (frame.client_id)
          this.fail(frame.client_id, frame.message || 'The server refused this message.');
        break;
      case 'pong':
        break;
    }
  }

  /** A change of a conversation, live or caught up: its details, and a line in its timeline. */
  private applyEvent(frame: EventFrame): void {
    this.advanceCursor(frame.id);
    const me = this.me();
    if (!me) return;
    this.seen.add(frame.id);
    const key = this.keyForId(frame.conversation_id);
    const line = fromEventFrame(frame);
    const change = line.event!;
    const before = this.state()[key];
    const addsMe =
      (change.type === 'member_added' || change.type === 'conversation_created') &&
      change.members.some((m) => m.username === me);
    this.update(key, (c) => {
      let next: Conversation = {
        ...c,
        id: frame.conversation_id,
        lastActivity: Math.max(c.lastActivity, frame.id),
      };
      if (frame.id > c.detailsAt) next = applyChange(next, change, me, frame.id);
      if (next.standing === 'removed' || next.standing === 'deleted') return next;
      return { ...next, messages: mergeById(next.messages, [line]) };
    });
    if (change.type === 'member_removed' && change.username === me) this.clearAllTyping(key);
    // Added to a conversation I did not know, or back into one: its name, members and counts.
    const unknown = !before?.detailsLoaded && change.type !== 'conversation_created';
    const rejoined = addsMe && before?.detailsLoaded && before.standing !== 'member';
    if ((unknown || rejoined) && change.type !== 'conversation_removed')
      void this.fetchDetails(frame.conversation_id);
    // Back in a conversation on screen whose history was dropped when I was taken out of it.
    const now = this.state()[key];
    if (addsMe && this.active() === key && now && !now.historyLoaded && !now.loadingHistory)
      void this.loadLatest(key);
  }

  private advanceCursor(id: number): void {
    if (Number.isFinite(id)) this.syncCursor = Math.max(this.syncCursor, id);
  }

  /** The conversation a message belongs to: the other person of a direct one, else its id. */
  private keyOfMessage(m: ChatMessage): string {
    const me = this.me() ?? '';
    if (m.to) return peerOf(m, me);
    return m.conversationId !== null ? this.keyForId(m.conversationId) : '';
  }

  private ingestMany(key: string, messages: ChatMessage[]): void {
    for (const m of messages) if (m.id !== null) this.seen.add(m.id);
    const ownClientIds = new Set(messages.filter((m) => m.clientId).map((m) => m.clientId));
    const id = messages.find((m) => m.conversationId !== null)?.conversationId ?? null;
    this.update(key, (c) => ({
      ...c,
      id: c.id ?? id,
      messages: mergeById(c.messages, messages),
      outbox: c.outbox.filter((m) => !ownClientIds.has(m.clientId)),
    }));
  }

  private ingest(message: ChatMessage, origin: Origin): void {
    const me = this.me();
    if (!me || message.id === null) return;
    const key = this.keyOfMessage(message);
    if (!key) return;
    const standing = this.state()[key]?.standing;
    // Out of it: whatever still arrives (a frame already on its way) is not mine to read.
    if (standing === 'removed' || standing === 'deleted') return;
    const isNew = !this.seen.has(message.id);
    this.seen.add(message.id);
    const incoming = message.from !== me;
    if (message.clientId && !incoming) this.clearAckTimer(message.clientId);
    const counts = isNew && incoming && origin === 'live' && message.kind === 'text';
    const view = this.viewport();
    const watching = view.key === key && view.atBottom && this.pageVisible();
    const known = this.state()[key];
    this.update(key, (c) => ({
      ...c,
      id: c.id ?? message.conversationId,
      lastActivity: Math.max(c.lastActivity, message.id!),
      messages: isNew ? mergeById(c.messages, [message]) : c.messages,
      outbox: incoming ? c.outbox : c.outbox.filter((m) => m.clientId !== message.clientId),
      unread:
        counts && message.id! > c.readUpTo && message.id! > c.countedThrough
          ? c.unread + 1
          : c.unread,
      unreadFrom: counts && !watching && c.unreadFrom === null ? message.id : c.unreadFrom,
      typing: incoming ? c.typing.filter((name) => name !== message.from) : c.typing,
    }));
    if (!known?.detailsLoaded && key.startsWith('#') && message.conversationId !== null)
      void this.fetchDetails(message.conversationId);
    if (isNew && incoming && origin === 'live') {
      this.clearTyping(key, message.from);
      for (const handler of [...this.incomingHandlers]) handler(message, key);
    }
  }

  private dispatch(message: ChatMessage): void {
    const clientId = message.clientId!;
    this.clearAckTimer(clientId);
    const direct = !!message.to;
    const frame: ClientFrame = direct
      ? { type: 'send_message', to: message.to, body: message.body, client_id: clientId }
      : {
          type: 'send_message',
          conversation_id: message.conversationId!,
          body: message.body,
          client_id: clientId,
        };
    if (this.realtime.send(frame)) {
      this.ackTimers.set(
        clientId,
        setTimeout(() => {
          this.ackTimers.delete(clientId);
          // The socket went away meanwhile: the next `ready` sends it again; no need to fail it.
          if (this.realtime.state() === 'open') this.fail(clientId, 'No answer from the server.');
        }, ACK_TIMEOUT_MS),
      );
      return;
    }
    // No live socket: the same write path is reachable over REST.
    const sent = direct
      ? this.api.send(message.to, message.body, clientId)
      : this.api.sendToConversation(message.conversationId!, message.body, clientId);
    sent
      .then((stored) => this.ingest(fromServer(stored), 'own'))
      .catch((e: unknown) => {
        // Unreachable is not refused: it stays queued, and the next `ready` sends it with the
        // same client id, so it is stored once even if this attempt did arrive.
        if (e instanceof ApiError && e.code === 'network') return;
        this.fail(clientId, e instanceof ApiError ? e.message : 'Not sent.');
      });
  }

  private fail(clientId: string, error: string): void {
    this.clearAckTimer(clientId);
    for (const c of Object.values(this.state())) {
      if (c.outbox.some((m) => m.clientId === clientId))
        this.setOutboxState(c.key, clientId, 'failed', error);
    }
  }

  private setOutboxState(
    key: string,
    clientId: string,
    state: DeliveryState,
    error?: string,
  ): void {
    this.update(key, (c) => ({
      ...c,
      outbox: c.outbox.map((m) => (m.clientId === clientId ? { ...m, state, error } : m)),
    }));
  }

  private clearAckTimer(clientId: string): void {
    const timer = this.ackTimers.get(clientId);
    if (timer) clearTimeout(timer);
    this.ackTimers.delete(clientId);
  }

  private showTyping(key: string, from: string): void {
    if (from === this.me()) return;
    this.clearTyping(key, from, false);
    const c = this.state()[key];
    if (c && !c.typing.includes(from)) this.patch(key, { typing: [...c.typing, from] });
    this.typingTimers.set(
      `${key}\n${from}`,
      setTimeout(() => this.clearTyping(key, from), TYPING_SHOWN_MS),
    );
  }

  private clearTyping(key: string, from: string, reset = true): void {
    const timerKey = `${key}\n${from}`;
    const timer = this.typingTimers.get(timerKey);
    if (timer) clearTimeout(timer);
    this.typingTimers.delete(timerKey);
    const c = this.state()[key];
    if (reset && c?.typing.includes(from))
      this.patch(key, { typing: c.typing.filter((name) => name !== from) });
  }

  private clearAllTyping(key: string): void {
    for (const [timerKey, timer] of this.typingTimers) {
      if (!timerKey.startsWith(`${key}\n`)) continue;
      clearTimeout(timer);
      this.typingTimers.delete(timerKey);
    }
  }

  private markRead(c: Conversation): void {
    const me = this.me() ?? '';
    let upTo = 0;
    for (const m of c.messages) if (m.from !== me && m.id !== null) upTo = Math.max(upTo, m.id);
    const needed = c.unread > 0 || upTo > c.readUpTo;
    if (!needed) return;
    // Runs inside an effect: defer the writes.
    queueMicrotask(() => {
      const current = this.state()[c.key];
      if (!current) return;
      const target = Math.max(upTo, current.readUpTo);
      this.patch(c.key, { unread: 0, readUpTo: target });
      // Only members keep a read marker.
      if (current.standing !== 'member') return;
      if (target <= 0 || (this.readInFlight.get(c.key) ?? 0) >= target) return;
      this.readInFlight.set(c.key, target);
      const direct = current.kind === 'direct';
      const frame: ClientFrame | null = direct
        ? { type: 'read', peer: current.peer ?? c.key, up_to: target }
        : current.id !== null
          ? { type: 'read', conversation_id: current.id, up_to: target }
          : null;
      if (!frame || this.realtime.send(frame)) return;
      const sent = direct
        ? this.api.markRead(current.peer ?? c.key, target)
        : this.api.markConversationRead(current.id!, target);
      void sent.catch(() => this.readInFlight.delete(c.key));
    });
  }
}
