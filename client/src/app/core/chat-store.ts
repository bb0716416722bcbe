//! All chat state: conversations, messages, the outbox, presence, typing and read markers.
import { DestroyRef, Injectable, computed, effect, inject, signal, untracked } from '@angular/core';
import {
  Api,
  ApiError,
  type ChatSummary,
  type Message,
  type ReadMarkers,
  type UserSummary,
} from '../api/api';
import { newClientId } from './ids';
import { Realtime, type ServerFrame } from './realtime';
import { Session } from './session';

export type DeliveryState = 'sending' | 'sent' | 'failed';

export interface ChatMessage {
  /** Stable across the sending → sent transition so the view never re-creates the bubble. */
  readonly key: string;
  readonly id: number | null;
  readonly from: string;
  readonly to: string;
  readonly body: string;
  readonly createdAt: string;
  readonly clientId: string | null;
  readonly state: DeliveryState;
  readonly error?: string;
}

export interface Conversation {
  readonly peer: string;
  readonly online: boolean;
  readonly unread: number;
  /** Confirmed messages, ascending by server id, without duplicates. */
  readonly messages: readonly ChatMessage[];
  /** My messages not yet confirmed by the server, in the order they were written. */
  readonly outbox: readonly ChatMessage[];
  readonly historyLoaded: boolean;
  readonly loadingHistory: boolean;
  readonly hasMore: boolean;
  readonly loadError: string | null;
  readonly notFound: boolean;
  /** The newest message of the peer's that I have reported as read. */
  readonly readUpTo: number;
  /** The newest of my messages the peer has read. */
  readonly peerReadUpTo: number;
  /**
   * The newest message id the server's `unread` count (from the conversation list) covered: newer
   * messages are counted here as they arrive, older ones never again.
   */
  readonly countedThrough: number;
  readonly typing: boolean;
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

function fromServer(message: Message): ChatMessage {
  return {
    key: message.client_id ? `c:${message.client_id}` : `m:${message.id}`,
    id: message.id,
    from: message.from,
    to: message.to ?? '',
    body: message.body,
    createdAt: message.created_at,
    clientId: message.client_id ?? null,
    state: 'sent',
  };
}

function emptyConversation(peer: string): Conversation {
  return {
    peer,
    online: false,
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
    typing: false,
    unreadFrom: null,
  };
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

/** The id of the first of the last `count` messages from `peer`, or null. */
export function unreadStart(
  messages: readonly ChatMessage[],
  peer: string,
  count: number,
): number | null {
  if (count <= 0) return null;
  const theirs = messages.filter((m) => m.from === peer && m.id !== null);
  if (theirs.length === 0) return null;
  return theirs[Math.max(0, theirs.length - count)].id;
}

/** How many of `peer`'s messages in the list have an id above `after`. */
export function countFrom(messages: readonly ChatMessage[], peer: string, after: number): number {
  let n = 0;
  for (const m of messages) if (m.from === peer && m.id !== null && m.id > after) n++;
  return n;
}

/** Whether the loaded messages include every message of the conversation newer than `id`. */
export function holdsAllAfter(c: Conversation, id: number): boolean {
  if (!c.historyLoaded) return false;
  return !c.hasMore || (c.messages[0]?.id ?? Number.POSITIVE_INFINITY) <= id;
}

export function lastMessage(c: Conversation): ChatMessage | null {
  return c.outbox.at(-1) ?? c.messages.at(-1) ?? null;
}

@Injectable({ providedIn: 'root' })
export class ChatStore {
  private readonly api = inject(Api);
  private readonly realtime = inject(Realtime);
  private readonly session = inject(Session);

  private readonly state = signal<Record<string, Conversation>>({});
  /** Users the server reported online (contacts and anyone seen in a search). */
  private readonly onlineUsers = signal<ReadonlySet<string>>(new Set());
  private readonly viewport = signal<{ peer: string | null; atBottom: boolean }>({
    peer: null,
    atBottom: true,
  });
  private readonly pageVisible = signal(globalThis.document?.visibilityState !== 'hidden');

  readonly me = this.session.username;
  readonly connection = this.realtime.state;
  readonly retryAt = this.realtime.retryAt;
  readonly listLoaded = signal(false);
  readonly listError = signal<string | null>(null);
  /** The peer whose conversation is on screen. */
  readonly active = signal<string | null>(null);

  /** Conversations with at least one message (or the open one), most recent first. */
  readonly conversations = computed(() => {
    const active = this.active();
    return Object.values(this.state())
      .filter(
        (c) => c.messages.length > 0 || c.outbox.length > 0 || (c.peer === active && !c.notFound),
      )
      .sort((a, b) => this.recency(b) - this.recency(a) || a.peer.localeCompare(b.peer));
  });
  readonly totalUnread = computed(() =>
    Object.values(this.state()).reduce((sum, c) => sum + c.unread, 0),
  );

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
  /** Unsent text per conversation; gone at sign-out with everything else. */
  private readonly drafts = new Map<string, string>();
  private readonly incomingHandlers = new Set<(m: ChatMessage) => void>();
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
        if (this.onlineUsers().size === 0) return;
        this.onlineUsers.set(new Set());
        this.state.update((s) => {
          const next: Record<string, Conversation> = {};
          for (const [peer, c] of Object.entries(s))
            next[peer] = c.online ? { ...c, online: false } : c;
          return next;
        });
      });
    });

    // Whatever is on screen, at the bottom of the list, in a visible tab, counts as read.
    effect(() => {
      const { peer, atBottom } = this.viewport();
      if (!peer || !atBottom || !this.pageVisible()) return;
      const c = this.state()[peer];
      if (c) this.markRead(c);
    });
  }

  conversation(peer: string): Conversation | undefined {
    return this.state()[peer];
  }

  isOnline(username: string): boolean {
    return this.onlineUsers().has(username);
  }

  /** Called for each new message from a peer (live or caught up), e.g. for notifications. */
  onIncoming(handler: (m: ChatMessage) => void): () => void {
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

  /** Loads the conversation list and both read markers of each conversation. */
  async refreshList(): Promise<void> {
    this.listFetchedAt = Date.now();
    try {
      // Markers are an extra: without them only "Seen" after a reload is lost.
      const [chats, markers] = await Promise.all([
        this.api.chats(),
        this.api.readMarkers().catch(() => null),
      ]);
      if (!this.started) return;
      if (markers) this.applyMarkers(markers);
      this.applyChats(chats);
      this.listError.set(null);
      this.listLoaded.set(true);
    } catch (e) {
      this.listError.set(e instanceof ApiError ? e.message : 'Could not load conversations.');
    }
  }

  /** Shows a conversation, loading its newest page the first time. */
  open(peer: string): void {
    this.active.set(peer);
    const c = this.ensure(peer);
    if (c.historyLoaded) {
      this.patch(peer, { unreadFrom: c.unreadFrom ?? unreadStart(c.messages, peer, c.unread) });
    } else {
      this.unreadAtOpen.set(peer, c.unread);
      if (!c.loadingHistory) void this.loadLatest(peer);
    }
  }

  close(peer: string): void {
    if (this.active() === peer) this.active.set(null);
    this.unreadAtOpen.delete(peer);
    if (this.state()[peer]?.unreadFrom != null) this.patch(peer, { unreadFrom: null });
    if (this.viewport().peer === peer) this.viewport.set({ peer: null, atBottom: true });
  }

  /** The conversation view reports whether its newest message is in view. */
  setViewport(peer: string, atBottom: boolean): void {
    const v = this.viewport();
    if (v.peer !== peer || v.atBottom !== atBottom) this.viewport.set({ peer, atBottom });
  }

  async loadLatest(peer: string): Promise<void> {
    this.patch(peer, { loadingHistory: true, loadError: null });
    try {
      const page = await this.api.messages(peer, { limit: PAGE_SIZE });
      const incoming = page.messages.map(fromServer);
      this.ingestMany(peer, incoming);
      const c = this.state()[peer]!;
      const unreadFrom =
        c.unreadFrom ?? unreadStart(c.messages, peer, this.unreadAtOpen.get(peer) ?? c.unread);
      this.unreadAtOpen.delete(peer);
      this.patch(peer, {
        historyLoaded: true,
        hasMore: page.has_more,
        loadingHistory: false,
        unreadFrom,
      });
    } catch (e) {
      const notFound = e instanceof ApiError && e.code === 'user_not_found';
      this.patch(peer, {
        loadingHistory: false,
        notFound,
        loadError: notFound ? null : e instanceof ApiError ? e.message : 'Could not load messages.',
      });
    }
  }

  /** Loads the page before the oldest message shown; resolves to whether anything was added. */
  async loadOlder(peer: string): Promise<boolean> {
    const c = this.state()[peer];
    if (!c || !c.hasMore || c.loadingHistory) return false;
    const oldest = c.messages[0]?.id;
    if (oldest == null) return false;
    this.patch(peer, { loadingHistory: true });
    try {
      const page = await this.api.messages(peer, { before: oldest, limit: PAGE_SIZE });
      this.ingestMany(peer, page.messages.map(fromServer));
      this.patch(peer, { hasMore: page.has_more, loadingHistory: false });
      return page.messages.length > 0;
    } catch (e) {
      this.patch(peer, {
        loadingHistory: false,
        loadError: e instanceof ApiError ? e.message : 'Could not load messages.',
      });
      return false;
    }
  }

  send(peer: string, text: string): void {
    const me = this.me();
    const body = text.trim();
    if (!me || !body) return;
    const clientId = newClientId();
    const message: ChatMessage = {
      key: `c:${clientId}`,
      id: null,
      from: me,
      to: peer,
      body,
      createdAt: new Date().toISOString(),
      clientId,
      state: 'sending',
    };
    this.update(peer, (c) => ({ ...c, outbox: [...c.outbox, message] }));
    this.typingSentAt.delete(peer);
    this.dispatch(message);
  }

  /** Sends a failed message again with the same client id, so the server never stores it twice. */
  retry(peer: string, clientId: string): void {
    const message = this.state()[peer]?.outbox.find((m) => m.clientId === clientId);
    if (!message) return;
    this.setOutboxState(peer, clientId, 'sending');
    this.dispatch({ ...message, state: 'sending' });
  }

  /** Tells the peer I am typing, at most every few seconds. */
  typing(peer: string): void {
    const now = Date.now();
    if (now - (this.typingSentAt.get(peer) ?? 0) < TYPING_SEND_EVERY_MS) return;
    if (this.realtime.send({ type: 'typing', to: peer })) this.typingSentAt.set(peer, now);
  }

  draft(peer: string): string {
    return this.drafts.get(peer) ?? '';
  }

  setDraft(peer: string, text: string): void {
    if (!this.started) return; // the composer saving its text while the session is torn down
    if (text) this.drafts.set(peer, text);
    else this.drafts.delete(peer);
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

  // ---- internals -------------------------------------------------------------------------

  private recency(c: Conversation): number {
    if (c.outbox.length > 0) return Number.MAX_SAFE_INTEGER;
    const last = c.messages.at(-1);
    return last ? Date.parse(last.createdAt) : Number.MAX_SAFE_INTEGER - 1;
  }

  private ensure(peer: string): Conversation {
    const existing = this.state()[peer];
    if (existing) return existing;
    const created = { ...emptyConversation(peer), online: this.onlineUsers().has(peer) };
    this.state.update((s) => ({ ...s, [peer]: created }));
    return created;
  }

  private update(peer: string, change: (c: Conversation) => Conversation): void {
    this.state.update((s) => {
      const current = s[peer] ?? {
        ...emptyConversation(peer),
        online: this.onlineUsers().has(peer),
      };
      return { ...s, [peer]: change(current) };
    });
  }

  private patch(peer: string, values: Partial<Conversation>): void {
    this.update(peer, (c) => ({ ...c, ...values }));
  }

  private applyChats(chats: ChatSummary[]): void {
    const online = new Set(this.onlineUsers());
    for (const chat of chats) {
      if (chat.online) online.add(chat.username);
      else online.delete(chat.username);
      const last = chat.last_message ? fromServer(chat.last_message) : null;
      if (last?.id != null) {
        this.seen.add(last.id);
        // Once the socket has been up, only the socket's own stream moves the cursor, so a
        // list fetched mid-outage can never make a later sync skip a message.
        if (!this.everReady) this.syncCursor = Math.max(this.syncCursor, last.id);
      }
      const newest = last?.id ?? 0;
      const view = this.viewport();
      const watching = chat.username === view.peer && view.atBottom;
      this.update(chat.username, (c) => {
        const messages = last ? mergeById(c.messages, [last]) : c.messages;
        // The server counted up to `newest` (nothing, if I have read past it since); messages
        // that arrived after its snapshot are counted here, and will not be counted again.
        const counted = newest > c.readUpTo ? Number(chat.unread) : 0;
        const later = countFrom(messages, chat.username, Math.max(newest, c.readUpTo));
        return {
          ...c,
          online: chat.online,
          unread: watching ? c.unread : counted + later,
          countedThrough: Math.max(c.countedThrough, newest),
          messages,
        };
      });
    }
    this.onlineUsers.set(online);
  }

  private applyMarkers(markers: ReadMarkers[]): void {
    for (const marker of markers) {
      const peer = marker.username;
      const upTo = Number(marker.read_up_to);
      if (upTo > (this.readInFlight.get(peer) ?? 0)) this.readInFlight.set(peer, upTo);
      this.update(peer, (c) => ({
        ...c,
        readUpTo: Math.max(c.readUpTo, upTo),
        peerReadUpTo: Math.max(c.peerReadUpTo, Number(marker.peer_read_up_to)),
      }));
    }
  }

  /** I read `peer`'s messages up to `upTo` on another device. */
  private readElsewhere(peer: string, upTo: number): void {
    const c = this.state()[peer];
    if (!c || upTo <= c.readUpTo) return;
    // The server has it already: never send it back.
    if (upTo > (this.readInFlight.get(peer) ?? 0)) this.readInFlight.set(peer, upTo);
    // Everything above the list's snapshot is held here, so the rest can be counted exactly;
    // a marker inside the snapshot needs the server's count unless the whole tail is loaded.
    const exact = upTo >= c.countedThrough || holdsAllAfter(c, upTo);
    const unread = exact ? Math.min(c.unread, countFrom(c.messages, peer, upTo)) : c.unread;
    this.patch(peer, {
      readUpTo: upTo,
      unread,
      unreadFrom: unread === 0 && this.active() !== peer ? null : c.unreadFrom,
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
      case 'online_users': {
        const online = new Set(frame.users);
        this.onlineUsers.set(online);
        this.state.update((s) => {
          const next: Record<string, Conversation> = {};
          for (const [peer, c] of Object.entries(s))
            next[peer] = { ...c, online: online.has(peer) };
          return next;
        });
        break;
      }
      case 'presence': {
        this.onlineUsers.update((set) => {
          const next = new Set(set);
          frame.online ? next.add(frame.username) : next.delete(frame.username);
          return next;
        });
        if (this.state()[frame.username]) this.patch(frame.username, { online: frame.online });
        break;
      }
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
      case 'typing':
        this.showTyping(frame.from);
        break;
      case 'read':
        if (frame.peer !== this.me() && this.state()[frame.peer]) {
          this.update(frame.peer, (c) => ({
            ...c,
            peerReadUpTo: Math.max(c.peerReadUpTo, frame.up_to),
          }));
        }
        break;
      case 'read_marker':
        this.readElsewhere(frame.peer, frame.up_to);
        break;
      case 'error':
        if (frame.client_id)
          this.fail(frame.client_id, frame.message || 'The server refused this message.');
        break;
      case 'pong':
        break;
    }
  }

  private advanceCursor(id: number): void {
    if (Number.isFinite(id)) this.syncCursor = Math.max(this.syncCursor, id);
  }

  private peerOf(m: ChatMessage): string {
    return m.from === this.me() ? m.to : m.from;
  }

  private ingestMany(peer: string, messages: ChatMessage[]): void {
    for (const m of messages) if (m.id !== null) this.seen.add(m.id);
    const ownClientIds = new Set(messages.filter((m) => m.clientId).map((m) => m.clientId));
    this.update(peer, (c) => ({
      ...c,
      messages: mergeById(c.messages, messages),
      outbox: c.outbox.filter((m) => !ownClientIds.has(m.clientId)),
    }));
  }

  private ingest(message: ChatMessage, origin: Origin): void {
    const me = this.me();
    if (!me || message.id === null) return;
    const peer = this.peerOf(message);
    const isNew = !this.seen.has(message.id);
    this.seen.add(message.id);
    const incoming = message.from !== me;
    if (message.clientId && !incoming) this.clearAckTimer(message.clientId);
    const counts = isNew && incoming && origin === 'live';
    const view = this.viewport();
    const watching = view.peer === peer && view.atBottom && this.pageVisible();
    this.update(peer, (c) => ({
      ...c,
      messages: isNew ? mergeById(c.messages, [message]) : c.messages,
      outbox: incoming ? c.outbox : c.outbox.filter((m) => m.clientId !== message.clientId),
      unread:
        counts && message.id! > c.readUpTo && message.id! > c.countedThrough
          ? c.unread + 1
          : c.unread,
      unreadFrom: counts && !watching && c.unreadFrom === null ? message.id : c.unreadFrom,
      typing: incoming ? false : c.typing,
    }));
    if (isNew && incoming && origin === 'live') {
      this.clearTyping(peer);
      for (const handler of [...this.incomingHandlers]) handler(message);
    }
  }

  private dispatch(message: ChatMessage): void {
    const clientId = message.clientId!;
    this.clearAckTimer(clientId);
    const sent = this.realtime.send({
      type: 'send_message',
      to: message.to,
      body: message.body,
      client_id: clientId,
    });
    if (sent) {
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
    this.api
      .send(message.to, message.body, clientId)
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
        this.setOutboxState(c.peer, clientId, 'failed', error);
    }
  }

  private setOutboxState(
    peer: string,
    clientId: string,
    state: DeliveryState,
    error?: string,
  ): void {
    this.update(peer, (c) => ({
      ...c,
      outbox: c.outbox.map((m) => (m.clientId === clientId ? { ...m, state, error } : m)),
    }));
  }

  private clearAckTimer(clientId: string): void {
    const timer = this.ackTimers.get(clientId);
    if (timer) clearTimeout(timer);
    this.ackTimers.delete(clientId);
  }

  private showTyping(peer: string): void {
    if (peer === this.me()) return;
    this.clearTyping(peer, false);
    this.patch(peer, { typing: true });
    this.typingTimers.set(
      peer,
      setTimeout(() => this.clearTyping(peer), TYPING_SHOWN_MS),
    );
  }

  private clearTyping(peer: string, reset = true): void {
    const timer = this.typingTimers.get(peer);
    if (timer) clearTimeout(timer);
    this.typingTimers.delete(peer);
    if (reset && this.state()[peer]?.typing) this.patch(peer, { typing: false });
  }

  private markRead(c: Conversation): void {
    let upTo = 0;
    for (const m of c.messages) if (m.from === c.peer && m.id !== null) upTo = Math.max(upTo, m.id);
    const needed = c.unread > 0 || upTo > c.readUpTo;
    if (!needed) return;
    // Runs inside an effect: defer the writes.
    queueMicrotask(() => {
      const current = this.state()[c.peer];
      if (!current) return;
      const target = Math.max(upTo, current.readUpTo);
      this.patch(c.peer, { unread: 0, readUpTo: target });
      if (target <= 0 || (this.readInFlight.get(c.peer) ?? 0) >= target) return;
      this.readInFlight.set(c.peer, target);
      if (!this.realtime.send({ type: 'read', peer: c.peer, up_to: target })) {
        void this.api.markRead(c.peer, target).catch(() => this.readInFlight.delete(c.peer));
      }
    });
  }
}
