import { TestBed } from '@angular/core/testing';
import { Api, ApiError } from '../api/api';
import {
  FakeApi,
  FakeSocket,
  directSummary,
  message,
  pairId,
  roomMessage,
  roomSummary,
  settle,
} from '../../testing/fakes';
import { ChatStore } from '../core/chat-store';
import { SOCKET_FACTORY } from '../core/realtime';
import { Session } from '../core/session';
import { ConversationPane } from './conversation-pane';

describe('ConversationPane', () => {
  let api: FakeApi;

  beforeEach(() => {
    localStorage.clear();
    FakeSocket.created = [];
    api = new FakeApi();
    api.pages.set('bob:', {
      messages: [
        message('bob', 'alice', 'hi alice', { id: 1 }),
        message('alice', 'bob', 'hi bob', { id: 2 }),
      ],
      has_more: false,
    });
    TestBed.configureTestingModule({
      imports: [ConversationPane],
      providers: [
        { provide: Api, useValue: api },
        { provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) },
      ],
    });
    TestBed.inject(Session).start({ token: 'tok', username: 'alice' });
  });

  afterEach(() => TestBed.inject(ChatStore).stop());

  async function render() {
    const store = TestBed.inject(ChatStore);
    await store.start();
    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: 2 });
    const fixture = TestBed.createComponent(ConversationPane);
    fixture.componentRef.setInput('key', 'bob');
    await fixture.whenStable();
    await settle();
    await fixture.whenStable();
    return { fixture, el: fixture.nativeElement as HTMLElement, socket, store };
  }

  it('shows the history in an ARIA log, oldest first, with a day separator', async () => {
    const { el } = await render();
    const log = el.querySelector('[role="log"]')!;
    expect(log.getAttribute('aria-labelledby')).toBe('pane-title');
    expect(el.querySelector('#pane-title')!.textContent).toBe('bob');
    expect(
      [...log.querySelectorAll('[data-testid="message-body"]')].map((b) => b.textContent),
    ).toEqual(['hi alice', 'hi bob']);
    expect(log.querySelector('[role="separator"]')).not.toBeNull();
    expect(log.textContent).toContain('This is the beginning of your conversation with bob.');
  });

  it('shows sending, then sent; a failed message offers a retry that reuses its client id', async () => {
    const { fixture, el, socket } = await render();
    const box = el.querySelector<HTMLTextAreaElement>('[data-testid="composer"]')!;
    box.value = 'are you there?';
    box.dispatchEvent(new Event('input'));
    box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    await fixture.whenStable();

    const last = () => [...el.querySelectorAll<HTMLElement>('[data-testid="message"]')].at(-1)!;
    expect(last().dataset['state']).toBe('sending');
    expect(last().textContent).toContain('Sending…');
    const [first] = socket.sentOfType('send_message');
    expect(first).toMatchObject({ to: 'bob', body: 'are you there?' });

    socket.receive({
      type: 'error',
      code: 'rate_limited',
      message: 'slow down',
      client_id: first.client_id,
    });
    await fixture.whenStable();
    expect(last().dataset['state']).toBe('failed');
    expect(last().textContent).toContain('Not sent — slow down');

    last().querySelector<HTMLButtonElement>('[data-testid="retry"]')!.click();
    await fixture.whenStable();
    const resent = socket.sentOfType('send_message');
    expect(resent).toHaveLength(2);
    expect(resent[1].client_id).toBe(first.client_id);

    socket.receive({
      type: 'ack',
      client_id: first.client_id,
      message: message('alice', 'bob', 'are you there?', { id: 3, client_id: first.client_id }),
    });
    await fixture.whenStable();
    expect(last().dataset['state']).toBe('sent');
    expect(last().dataset['id']).toBe('3');
    expect(el.querySelectorAll('[data-testid="message"]')).toHaveLength(3);
  });

  it('shows "Seen" from the server’s read markers, before any live receipt', async () => {
    api.conversationsResult = [
      directSummary('bob', {
        online: true,
        last: message('alice', 'bob', 'hi bob', { id: 2 }),
        readUpTo: 1,
        peerReadUpTo: 2,
      }),
    ];
    const { el } = await render();
    expect(el.querySelector('[data-testid="delivery"]')!.textContent).toContain('Seen');
  });

  it('shows "Sent" while the peer has not read my newest message', async () => {
    api.conversationsResult = [
      directSummary('bob', {
        last: message('alice', 'bob', 'hi bob', { id: 2 }),
        readUpTo: 1,
        peerReadUpTo: 1,
      }),
    ];
    const { el } = await render();
    expect(el.querySelector('[data-testid="delivery"]')!.textContent).toContain('Sent');
  });

  it('Shift+Enter does not send', async () => {
    const { fixture, el, socket } = await render();
    const box = el.querySelector<HTMLTextAreaElement>('[data-testid="composer"]')!;
    box.value = 'line one';
    box.dispatchEvent(new Event('input'));
    box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', shiftKey: true }));
    await fixture.whenStable();
    expect(socket.sentOfType('send_message')).toHaveLength(0);
  });

  it('says so when the user does not exist', async () => {
    api.messages = async () => {
      throw new ApiError(404, 'user_not_found', 'no such user');
    };
    const { el } = await render();
    expect(el.textContent).toContain('There is no one called “bob”.');
    expect(el.querySelector('[data-testid="composer"]')).toBeNull();
    // No avatar or presence for someone who is not there.
    expect(el.querySelector('#pane-title')!.textContent).toBe('No such conversation');
    expect(el.querySelector('app-avatar')).toBeNull();
    expect(el.querySelector('[data-testid="peer-status"]')).toBeNull();
    expect(el.textContent).not.toContain('Offline');
  });

  it('shows typing once, above the composer, and presence stays in the header', async () => {
    const { fixture, el, socket } = await render();
    socket.receive({ type: 'presence', username: 'bob', online: true });
    socket.receive({ type: 'typing', conversation_id: pairId('alice', 'bob'), from: 'bob' });
    await fixture.whenStable();
    expect(el.querySelector('[data-testid="typing-indicator"]')!.textContent).toContain(
      'bob is typing…',
    );
    expect(el.querySelector('[data-testid="peer-status"]')!.textContent!.trim()).toBe('Online');
    expect(el.textContent!.match(/typing…/g)).toHaveLength(1);
  });
});

describe('ConversationPane for groups and rooms', () => {
  let api: FakeApi;

  beforeEach(() => {
    localStorage.clear();
    FakeSocket.created = [];
    api = new FakeApi();
    TestBed.configureTestingModule({
      imports: [ConversationPane],
      providers: [
        { provide: Api, useValue: api },
        { provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) },
      ],
    });
    TestBed.inject(Session).start({ token: 'tok', username: 'alice' });
  });

  afterEach(() => TestBed.inject(ChatStore).stop());

  async function render(key: string) {
    const store = TestBed.inject(ChatStore);
    await store.start();
    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: 0 });
    const fixture = TestBed.createComponent(ConversationPane);
    fixture.componentRef.setInput('key', key);
    await fixture.whenStable();
    await settle();
    await fixture.whenStable();
    return { fixture, el: fixture.nativeElement as HTMLElement, socket };
  }

  const created = {
    type: 'conversation_created',
    by: 'bob',
    kind: 'room',
    name: 'design',
    topic: null,
    visibility: 'public',
    members: [{ username: 'bob', role: 'owner' }],
  };

  it('shows the topic, event lines from history and live, and names the sender of each run', async () => {
    const room = roomSummary(7, {
      name: 'design',
      topic: 'pixels',
      memberCount: 4,
      lastActivity: 5,
    });
    api.conversationsResult = [room];
    api.details.set(7, room);
    api.pages.set('#7:', {
      messages: [
        roomMessage(7, 'bob', 'bob created the room design', {
          id: 1,
          kind: 'event',
          event: created,
        }),
        roomMessage(7, 'bob', 'one', { id: 2 }),
        roomMessage(7, 'bob', 'two', { id: 3 }),
        roomMessage(7, 'carol', 'three', { id: 4 }),
      ],
      has_more: false,
    });
    const { fixture, el, socket } = await render('#7');
    expect(el.querySelector('#pane-title')!.textContent).toBe('design');
    expect(el.querySelector('[data-testid="room-topic"]')!.textContent).toBe('pixels');
    expect(el.querySelector('[data-testid="header-member-count"]')!.textContent).toBe('4 members');
    const texts = () =>
      [...el.querySelectorAll('[data-testid="event-text"]')].map((e) => e.textContent);
    expect(texts()).toEqual(['bob created the room design']);
    expect([...el.querySelectorAll('[data-testid="sender"]')].map((e) => e.textContent)).toEqual([
      'bob',
      'carol',
    ]);

    socket.receive({
      type: 'conversation_updated',
      id: 6,
      conversation_id: 7,
      created_at: new Date().toISOString(),
      by: 'carol',
      topic: 'pixels and type',
    });
    await fixture.whenStable();
    expect(texts()).toEqual([
      'bob created the room design',
      'carol set the topic to “pixels and type”',
    ]);
    expect(el.querySelector('[data-testid="room-topic"]')!.textContent).toBe('pixels and type');
  });

  it('makes an archived room read-only, offering Unarchive to its admins only', async () => {
    api.conversationsResult = [
      roomSummary(7, { archived: true, members: [{ username: 'alice', role: 'admin' }] }),
      roomSummary(8, { archived: true, members: [{ username: 'alice', role: 'member' }] }),
    ];
    const { fixture, el } = await render('#7');
    expect(el.querySelector('[data-testid="composer"]')).toBeNull();
    const note = el.querySelector('[data-testid="read-only"]')!;
    expect(note.textContent).toContain('archived');
    expect(note.querySelector('button')!.textContent!.trim()).toBe('Unarchive');

    fixture.componentRef.setInput('key', '#8');
    await fixture.whenStable();
    expect(el.querySelector('[data-testid="read-only"] button')).toBeNull();
  });

  it('offers Join in a public room I am not in, and says "Seen by" in a group', async () => {
    api.details.set(9, roomSummary(9, { visibility: 'public', myRole: null }));
    api.conversationsResult = [
      roomSummary(3, {
        kind: 'group',
        members: [
          { username: 'alice', read_up_to: 10 },
          { username: 'bob', read_up_to: 10 },
          { username: 'carol', read_up_to: 9 },
        ],
        last: roomMessage(3, 'alice', 'lunch?', { id: 10 }),
      }),
    ];
    const { fixture, el, socket } = await render('#9');
    expect(el.querySelector('[data-testid="not-member"]')!.textContent).toContain(
      'You are not in this room.',
    );
    expect(el.querySelector('[data-testid="join"]')).not.toBeNull();
    expect(el.querySelector('[data-testid="composer"]')).toBeNull();

    fixture.componentRef.setInput('key', '#3');
    await fixture.whenStable();
    await settle();
    await fixture.whenStable();
    const delivery = () => el.querySelector('[data-testid="delivery"]')!;
    expect(delivery().textContent!.trim()).toBe('· Seen by 1');
    socket.receive({ type: 'read', conversation_id: 3, peer: 'carol', up_to: 10 });
    await fixture.whenStable();
    expect(delivery().textContent!.trim()).toBe('· Seen by 2');
    expect(delivery().getAttribute('title')).toBe('Seen by bob and carol');
  });
});
