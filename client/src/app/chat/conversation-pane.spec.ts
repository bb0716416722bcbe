import { TestBed } from '@angular/core/testing';
import { Api, ApiError } from '../api/api';
import { FakeApi, FakeSocket, directSummary, message, pairId, settle } from '../../testing/fakes';
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
