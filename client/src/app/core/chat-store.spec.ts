import { TestBed } from '@angular/core/testing';
import { Api, ApiError } from '../api/api';
import { FakeApi, FakeSocket, directSummary, message, pairId, settle } from '../../testing/fakes';
import { ChatStore, countFrom, mergeById, unreadStart, type ChatMessage } from './chat-store';
import { SOCKET_FACTORY } from './realtime';
import { Session } from './session';

/** Longer than the store waits for an ack on a live socket. */
const ACK_WAIT_MS = 11_000;

describe('ChatStore', () => {
  let api: FakeApi;
  let store: ChatStore;

  beforeEach(() => {
    vi.useFakeTimers();
    localStorage.clear();
    FakeSocket.created = [];
    api = new FakeApi();
    TestBed.configureTestingModule({
      providers: [
        { provide: Api, useValue: api },
        { provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) },
      ],
    });
    TestBed.inject(Session).start({ token: 'tok', username: 'alice' });
    store = TestBed.inject(ChatStore);
  });

  afterEach(() => {
    store.stop();
    vi.useRealTimers();
  });

  async function startConnected(lastId = 0): Promise<FakeSocket> {
    await store.start();
    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: lastId });
    return socket;
  }

  function flush(): void {
    TestBed.tick();
  }

  it('lists conversations from the server, most recent first, with presence and unread', async () => {
    api.conversationsResult = [
      directSummary('carol', { last: message('alice', 'carol', 'old', { id: 3 }) }),
      directSummary('bob', {
        online: true,
        unread: 2,
        last: message('bob', 'alice', 'new', { id: 9 }),
      }),
    ];
    await startConnected(9);
    expect(
      store.conversations().map((c) => [c.key, store.isOnline(c.peer!), c.unread, c.id]),
    ).toEqual([
      ['bob', true, 2, pairId('alice', 'bob')],
      ['carol', false, 0, pairId('alice', 'carol')],
    ]);
    expect(store.totalUnread()).toBe(2);
  });

  it('syncs from the newest id it knows after every (re)connect, with no duplicates', async () => {
    api.conversationsResult = [
      directSummary('bob', { online: true, last: message('bob', 'alice', 'hi', { id: 41 }) }),
    ];
    const first = await startConnected(41);
    expect(first.sentOfType('sync')).toEqual([{ type: 'sync', after: 41 }]);

    first.receive({ type: 'receive_message', message: message('bob', 'alice', 'one', { id: 42 }) });
    first.drop();
    vi.advanceTimersByTime(1000);
    const second = FakeSocket.latest();
    second.open();
    second.receive({ type: 'ready', username: 'alice', last_id: 44 });
    expect(second.sentOfType('sync')).toEqual([{ type: 'sync', after: 42 }]);
    // The catch-up repeats 42 (already shown) and brings 43 and 44.
    for (const id of [42, 43, 44])
      second.receive({
        type: 'receive_message',
        message: message('bob', 'alice', `m${id}`, { id }),
      });
    second.receive({ type: 'sync_done', last_id: 44 });
    expect(store.conversation('bob')!.messages.map((m) => m.id)).toEqual([41, 42, 43, 44]);
    expect(store.conversation('bob')!.unread).toBe(3);
  });

  it('shows a message as sending until the ack, then sent, keeping its key', async () => {
    const socket = await startConnected();
    store.send('bob', '  hello  ');
    const pending = store.conversation('bob')!.outbox[0];
    expect(pending).toMatchObject({ body: 'hello', state: 'sending', id: null });
    const frame = socket.sentOfType('send_message')[0];
    expect(frame).toEqual({
      type: 'send_message',
      to: 'bob',
      body: 'hello',
      client_id: pending.clientId,
    });

    socket.receive({
      type: 'ack',
      client_id: pending.clientId!,
      message: message('alice', 'bob', 'hello', { id: 5, client_id: pending.clientId! }),
    });
    const c = store.conversation('bob')!;
    expect(c.outbox).toEqual([]);
    expect(c.messages).toHaveLength(1);
    expect(c.messages[0]).toMatchObject({ id: 5, state: 'sent', key: pending.key });
  });

  it('marks an unacknowledged message failed and retries it with the same client id', async () => {
    const socket = await startConnected();
    store.send('bob', 'are you there?');
    const clientId = store.conversation('bob')!.outbox[0].clientId!;
    vi.advanceTimersByTime(10_000);
    expect(store.conversation('bob')!.outbox[0].state).toBe('failed');

    store.retry('bob', clientId);
    expect(store.conversation('bob')!.outbox[0].state).toBe('sending');
    const sends = socket.sentOfType('send_message');
    expect(sends.map((f) => f.client_id)).toEqual([clientId, clientId]);
    // The server had stored the first attempt: the resend acks the same message; it is shown once.
    const stored = message('alice', 'bob', 'are you there?', { id: 8, client_id: clientId });
    socket.receive({ type: 'ack', client_id: clientId, message: stored });
    socket.receive({ type: 'ack', client_id: clientId, message: stored });
    expect(store.conversation('bob')!.messages.map((m) => m.id)).toEqual([8]);
    expect(store.conversation('bob')!.outbox).toEqual([]);
  });

  it('keeps a message written offline queued and sends it with its client id on reconnect', async () => {
    await store.start();
    api.sendImpl = () => Promise.reject(new ApiError(0, 'network', 'Can’t reach chatd.'));
    store.send('bob', 'from a tunnel');
    await settle();
    const queued = store.conversation('bob')!.outbox[0];
    expect(api.sends.map((s) => s.clientId)).toEqual([queued.clientId]);
    expect(queued.state).toBe('sending');
    vi.advanceTimersByTime(60_000);
    expect(store.conversation('bob')!.outbox[0].state).toBe('sending');

    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: 0 });
    expect(socket.sentOfType('send_message')).toEqual([
      { type: 'send_message', to: 'bob', body: 'from a tunnel', client_id: queued.clientId },
    ]);
    const stored = message('alice', 'bob', 'from a tunnel', { id: 3, client_id: queued.clientId! });
    socket.receive({ type: 'ack', client_id: queued.clientId!, message: stored });
    expect(store.conversation('bob')!.outbox).toEqual([]);
    expect(store.conversation('bob')!.messages.map((m) => [m.id, m.state])).toEqual([[3, 'sent']]);
  });

  it('keeps waiting for an ack the lost socket never delivered instead of failing', async () => {
    const socket = await startConnected();
    store.send('bob', 'in flight');
    socket.drop();
    vi.advanceTimersByTime(ACK_WAIT_MS);
    expect(store.conversation('bob')!.outbox[0].state).toBe('sending');
  });

  it('fails a message the REST API refuses, with the reason, for Retry', async () => {
    await store.start();
    api.sendImpl = () => Promise.reject(new ApiError(422, 'invalid_body', 'body is too long'));
    store.send('bob', 'x');
    await settle();
    expect(store.conversation('bob')!.outbox[0]).toMatchObject({
      state: 'failed',
      error: 'body is too long',
    });
  });

  it('fails a message the server refuses, with the reason', async () => {
    const socket = await startConnected();
    store.send('bob', 'x');
    const clientId = store.conversation('bob')!.outbox[0].clientId!;
    socket.receive({
      type: 'error',
      code: 'invalid_body',
      message: 'body is too long',
      client_id: clientId,
    });
    expect(store.conversation('bob')!.outbox[0]).toMatchObject({
      state: 'failed',
      error: 'body is too long',
    });
  });

  it('sends over REST while the socket is down and resends unacked messages after reconnecting', async () => {
    await store.start();
    api.sendImpl = (peer, body, clientId) =>
      Promise.resolve(message('alice', String(peer), body, { id: 12, client_id: clientId }));
    store.send('bob', 'via rest');
    await settle();
    expect(api.sends).toHaveLength(1);
    expect(store.conversation('bob')!.messages.map((m) => [m.id, m.state])).toEqual([[12, 'sent']]);

    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: 12 });
    store.send('bob', 'lost ack');
    const clientId = store.conversation('bob')!.outbox[0].clientId!;
    socket.drop();
    vi.advanceTimersByTime(1000);
    const next = FakeSocket.latest();
    next.open();
    next.receive({ type: 'ready', username: 'alice', last_id: 13 });
    expect(next.sentOfType('send_message').map((f) => f.client_id)).toEqual([clientId]);
  });

  it('counts unread messages, clears them when read on screen, and tells the server', async () => {
    const socket = await startConnected();
    socket.receive({ type: 'receive_message', message: message('bob', 'alice', 'a', { id: 20 }) });
    socket.receive({ type: 'receive_message', message: message('bob', 'alice', 'b', { id: 21 }) });
    expect(store.totalUnread()).toBe(2);
    expect(store.conversation('bob')!.unreadFrom).toBe(20);

    store.open('bob');
    store.setViewport('bob', true);
    flush();
    await settle();
    expect(store.totalUnread()).toBe(0);
    expect(socket.sentOfType('read')).toEqual([{ type: 'read', peer: 'bob', up_to: 21 }]);
  });

  it('does not count messages as read while scrolled away from them', async () => {
    const socket = await startConnected();
    store.open('bob');
    store.setViewport('bob', false);
    socket.receive({ type: 'receive_message', message: message('bob', 'alice', 'a', { id: 30 }) });
    flush();
    await settle();
    expect(store.totalUnread()).toBe(1);
    store.setViewport('bob', true);
    flush();
    await settle();
    expect(store.totalUnread()).toBe(0);
  });

  it('tracks presence, typing and read receipts from frames', async () => {
    const bobId = pairId('alice', 'bob');
    api.conversationsResult = [
      directSummary('bob', { last: message('alice', 'bob', 'x', { id: 2 }) }),
    ];
    const socket = await startConnected(2);
    socket.receive({ type: 'online_users', users: ['bob'] });
    expect(store.isOnline('bob')).toBe(true);
    socket.receive({ type: 'presence', username: 'bob', online: false });
    expect(store.isOnline('bob')).toBe(false);

    socket.receive({ type: 'typing', conversation_id: bobId, from: 'bob' });
    expect(store.conversation('bob')!.typing).toEqual(['bob']);
    vi.advanceTimersByTime(6_000);
    expect(store.conversation('bob')!.typing).toEqual([]);

    socket.receive({ type: 'read', conversation_id: bobId, peer: 'bob', up_to: 2 });
    expect(store.conversation('bob')!.peerReadUpTo).toBe(2);
  });

  describe('read markers', () => {
    const bobId = pairId('alice', 'bob');
    const bobSaid = (
      id: number,
      unread: number,
      marks: { readUpTo?: number; peerReadUpTo?: number } = {},
    ) =>
      directSummary('bob', {
        online: true,
        unread,
        last: message('bob', 'alice', `m${id}`, { id }),
        ...marks,
      });

    it('restores "seen" and my read position from the server after a reload', async () => {
      api.conversationsResult = [
        directSummary('bob', {
          online: true,
          last: message('alice', 'bob', 'did you get it?', { id: 7 }),
          readUpTo: 6,
          peerReadUpTo: 7,
        }),
      ];
      const socket = await startConnected(7);
      expect(store.conversation('bob')).toMatchObject({ readUpTo: 6, peerReadUpTo: 7, unread: 0 });

      // What the server already holds is not reported again when the conversation is opened.
      store.open('bob');
      store.setViewport('bob', true);
      flush();
      await settle();
      expect(socket.sentOfType('read')).toEqual([]);
      expect(api.reads).toEqual([]);
    });

    it('never moves a marker backwards when the list is fetched again', async () => {
      api.conversationsResult = [bobSaid(9, 0, { readUpTo: 9, peerReadUpTo: 8 })];
      const socket = await startConnected(9);
      socket.receive({ type: 'read', conversation_id: bobId, peer: 'bob', up_to: 12 });
      api.conversationsResult = [bobSaid(9, 0, { readUpTo: 5, peerReadUpTo: 8 })];
      await store.refreshList();
      expect(store.conversation('bob')).toMatchObject({ readUpTo: 9, peerReadUpTo: 12 });
    });

    it('clears the unread count when I read on another device, without telling the server again', async () => {
      api.conversationsResult = [
        bobSaid(9, 2),
        directSummary('carol', { unread: 1, last: message('carol', 'alice', 'yo', { id: 4 }) }),
      ];
      const socket = await startConnected(9);
      socket.receive({
        type: 'receive_message',
        message: message('bob', 'alice', 'and', { id: 10 }),
      });
      expect(store.conversation('bob')!.unread).toBe(3);
      expect(store.totalUnread()).toBe(4);

      socket.receive({ type: 'read_marker', conversation_id: bobId, peer: 'bob', up_to: 10 });
      expect(store.conversation('bob')).toMatchObject({
        unread: 0,
        readUpTo: 10,
        unreadFrom: null,
      });
      expect(store.totalUnread()).toBe(1);

      // Opening it here now has nothing to report.
      store.open('bob');
      store.setViewport('bob', true);
      flush();
      await settle();
      expect(socket.sentOfType('read')).toEqual([]);

      // Newer messages count again.
      store.close('bob');
      store.setViewport('carol', false);
      socket.receive({
        type: 'receive_message',
        message: message('bob', 'alice', 'more', { id: 11 }),
      });
      expect(store.conversation('bob')!.unread).toBe(1);
    });

    it('counts what is left when the other device read only part of the new messages', async () => {
      api.conversationsResult = [bobSaid(9, 1)];
      const socket = await startConnected(9);
      for (const id of [10, 11, 12])
        socket.receive({
          type: 'receive_message',
          message: message('bob', 'alice', `m${id}`, { id }),
        });
      expect(store.conversation('bob')!.unread).toBe(4);
      socket.receive({ type: 'read_marker', conversation_id: bobId, peer: 'bob', up_to: 11 });
      expect(store.conversation('bob')!.unread).toBe(1);
      expect(api.conversationsCalls).toBe(1);
    });

    it('asks the server for the count when the marker lands among messages it has not loaded', async () => {
      api.conversationsResult = [bobSaid(9, 5)];
      const socket = await startConnected(9);
      socket.receive({ type: 'read_marker', conversation_id: bobId, peer: 'bob', up_to: 7 });
      socket.receive({ type: 'read_marker', conversation_id: bobId, peer: 'bob', up_to: 8 });
      expect(store.conversation('bob')!.unread).toBe(5);
      api.conversationsResult = [bobSaid(9, 1, { readUpTo: 8 })];
      vi.advanceTimersByTime(1_000);
      await settle();
      expect(api.conversationsCalls).toBe(2);
      expect(store.conversation('bob')!.unread).toBe(1);
    });

    it('counts exactly from loaded history when a marker lands inside it', async () => {
      api.conversationsResult = [bobSaid(9, 3)];
      api.pages.set('bob:', {
        messages: [7, 8, 9].map((id) => message('bob', 'alice', `m${id}`, { id })),
        has_more: false,
      });
      const socket = await startConnected(9);
      await store.loadLatest('bob');
      socket.receive({ type: 'read_marker', conversation_id: bobId, peer: 'bob', up_to: 8 });
      expect(store.conversation('bob')!.unread).toBe(1);
      expect(api.conversationsCalls).toBe(1);
    });

    it('ignores markers that are not ahead of what it knows', async () => {
      api.conversationsResult = [bobSaid(9, 2, { readUpTo: 7 })];
      const socket = await startConnected(9);
      socket.receive({ type: 'read_marker', conversation_id: bobId, peer: 'bob', up_to: 6 });
      socket.receive({ type: 'read_marker', conversation_id: 77, peer: 'nobody', up_to: 6 });
      expect(store.conversation('bob')).toMatchObject({ unread: 2, readUpTo: 7 });
      expect(store.conversation('nobody')).toBeUndefined();
    });
  });

  describe('unread counts across a reconnect', () => {
    async function missThree(listFirst: boolean): Promise<number> {
      api.conversationsResult = [
        directSummary('bob', {
          online: true,
          unread: 1,
          last: message('bob', 'alice', 'm10', { id: 10 }),
        }),
      ];
      const first = await startConnected(10);
      first.drop();
      // While away: 11, 12 and 13 arrive at the server.
      api.conversationsResult = [
        directSummary('bob', {
          online: true,
          unread: 4,
          last: message('bob', 'alice', 'm13', { id: 13 }),
        }),
      ];
      vi.advanceTimersByTime(1000);
      const second = FakeSocket.latest();
      second.open();
      second.receive({ type: 'ready', username: 'alice', last_id: 13 });
      const catchUp = () => {
        for (const id of [11, 12, 13])
          second.receive({
            type: 'receive_message',
            message: message('bob', 'alice', `m${id}`, { id }),
          });
        second.receive({ type: 'sync_done', last_id: 13 });
      };
      if (!listFirst) catchUp();
      await settle();
      if (listFirst) catchUp();
      return store.conversation('bob')!.unread;
    }

    it('does not count caught-up messages twice when the list arrives first', async () => {
      expect(await missThree(true)).toBe(4);
    });

    it('does not count caught-up messages twice when the catch-up arrives first', async () => {
      expect(await missThree(false)).toBe(4);
    });
  });

  it('sends typing at most every three seconds', async () => {
    const socket = await startConnected();
    store.typing('bob');
    store.typing('bob');
    vi.advanceTimersByTime(2_000);
    store.typing('bob');
    vi.advanceTimersByTime(1_500);
    store.typing('bob');
    expect(socket.sentOfType('typing')).toHaveLength(2);
  });

  it('loads history once and older pages before the oldest id', async () => {
    await startConnected();
    const newest = Array.from({ length: 3 }, (_, i) =>
      message('bob', 'alice', `n${i}`, { id: 100 + i }),
    );
    api.pages.set('bob:', { messages: newest, has_more: true });
    api.pages.set('bob:100', {
      messages: [message('bob', 'alice', 'old', { id: 60 })],
      has_more: false,
    });
    store.open('bob');
    await settle();
    expect(store.conversation('bob')).toMatchObject({ historyLoaded: true, hasMore: true });
    expect(await store.loadOlder('bob')).toBe(true);
    expect(store.conversation('bob')!.messages.map((m) => m.id)).toEqual([60, 100, 101, 102]);
    expect(store.conversation('bob')!.hasMore).toBe(false);
    expect(await store.loadOlder('bob')).toBe(false);
    expect(api.pageRequests).toEqual([
      { peer: 'bob', before: undefined },
      { peer: 'bob', before: 100 },
    ]);
  });

  it('notifies listeners of new incoming messages only', async () => {
    const seen: string[] = [];
    store.onIncoming((m) => seen.push(m.body));
    const socket = await startConnected();
    socket.receive({
      type: 'receive_message',
      message: message('bob', 'alice', 'ping', { id: 50 }),
    });
    socket.receive({
      type: 'receive_message',
      message: message('bob', 'alice', 'ping', { id: 50 }),
    });
    socket.receive({
      type: 'receive_message',
      message: message('alice', 'bob', 'from my phone', { id: 51 }),
    });
    expect(seen).toEqual(['ping']);
  });
});

describe('message list helpers', () => {
  const m = (id: number, from = 'bob'): ChatMessage => ({
    key: `m:${id}`,
    id,
    conversationId: 1,
    kind: 'text',
    from,
    to: 'alice',
    body: '',
    createdAt: '',
    clientId: null,
    state: 'sent',
  });

  it('merges by id, in order, without duplicates', () => {
    expect(mergeById([m(1), m(3)], [m(2), m(3), m(5)]).map((x) => x.id)).toEqual([1, 2, 3, 5]);
  });

  it('counts the messages others wrote after an id, never events', () => {
    const event: ChatMessage = {
      ...m(5, 'carol'),
      kind: 'event',
      event: { type: 'member_added', by: 'carol', members: [{ username: 'dave', role: 'member' }] },
    };
    expect(countFrom([m(1), m(2, 'alice'), m(3), m(4), event], 'alice', 1)).toBe(2);
    expect(countFrom([m(1)], 'alice', 1)).toBe(0);
    expect(countFrom([m(1, 'bob'), m(2, 'carol')], 'alice', 0)).toBe(2);
  });

  it('finds where the unread run starts', () => {
    expect(unreadStart([m(1), m(2, 'alice'), m(3), m(4)], 'alice', 2)).toBe(3);
    expect(unreadStart([m(1)], 'alice', 5)).toBe(1);
    expect(unreadStart([m(1)], 'alice', 0)).toBeNull();
  });
});

describe('drafts', () => {
  it('are kept per conversation and forgotten at sign-out', async () => {
    TestBed.configureTestingModule({
      providers: [
        { provide: Api, useValue: new FakeApi() },
        { provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) },
      ],
    });
    TestBed.inject(Session).start({ token: 'tok', username: 'alice' });
    const store = TestBed.inject(ChatStore);
    await store.start();
    store.setDraft('bob', 'half a thought');
    expect(store.draft('bob')).toBe('half a thought');
    expect(store.draft('carol')).toBe('');
    store.stop();
    store.setDraft('bob', 'saved during teardown');
    expect(store.draft('bob')).toBe('');
  });
});
