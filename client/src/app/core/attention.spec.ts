import { TestBed } from '@angular/core/testing';
import { Api } from '../api/api';
import { FakeApi, FakeSocket, message } from '../../testing/fakes';
import { Attention, titleFor } from './attention';
import { ChatStore } from './chat-store';
import { SOCKET_FACTORY } from './realtime';
import { Session } from './session';

describe('tab title', () => {
  it('carries the unread count', () => {
    expect(titleFor(0)).toBe('chatd');
    expect(titleFor(3)).toBe('(3) chatd');
    expect(titleFor(250)).toBe('(99+) chatd');
  });
});

describe('Attention', () => {
  const shown: { title: string; body?: string }[] = [];
  let permission: NotificationPermission;
  const requestPermission = vi.fn(async () => {
    permission = 'granted';
    return permission;
  });
  class FakeNotification {
    static get permission() {
      return permission;
    }
    static requestPermission = requestPermission;
    onclick: (() => void) | null = null;
    constructor(title: string, options?: NotificationOptions) {
      shown.push({ title, body: options?.body });
    }
    close() {}
  }
  let hidden = false;

  beforeEach(() => {
    shown.length = 0;
    permission = 'default';
    hidden = false;
    requestPermission.mockClear();
    vi.stubGlobal('Notification', FakeNotification);
    vi.spyOn(document, 'visibilityState', 'get').mockImplementation(() =>
      hidden ? 'hidden' : 'visible',
    );
    localStorage.clear();
    FakeSocket.created = [];
    TestBed.configureTestingModule({
      providers: [
        { provide: Api, useValue: new FakeApi() },
        { provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) },
      ],
    });
    TestBed.inject(Session).start({ token: 't', username: 'alice' });
  });

  afterEach(() => {
    TestBed.inject(ChatStore).stop();
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  async function connected() {
    const attention = TestBed.inject(Attention);
    await TestBed.inject(ChatStore).start();
    const socket = FakeSocket.latest();
    socket.open();
    socket.receive({ type: 'ready', username: 'alice', last_id: 0 });
    return { attention, socket };
  }

  it('never asks for permission by itself, only when asked to', async () => {
    const { attention } = await connected();
    expect(requestPermission).not.toHaveBeenCalled();
    expect(attention.canAsk()).toBe(true);
    await attention.askPermission();
    expect(requestPermission).toHaveBeenCalledTimes(1);
    expect(attention.canAsk()).toBe(false);
  });

  it('notifies about new messages only while the tab is hidden and permission is granted', async () => {
    const { attention, socket } = await connected();
    hidden = true;
    socket.receive({
      type: 'receive_message',
      message: message('bob', 'alice', 'before permission', { id: 1 }),
    });
    expect(shown).toEqual([]);

    await attention.askPermission();
    hidden = false;
    socket.receive({
      type: 'receive_message',
      message: message('bob', 'alice', 'while looking', { id: 2 }),
    });
    expect(shown).toEqual([]);

    hidden = true;
    socket.receive({
      type: 'receive_message',
      message: message('bob', 'alice', 'while away', { id: 3 }),
    });
    socket.receive({
      type: 'receive_message',
      message: message('alice', 'bob', 'my own, from my phone', { id: 4 }),
    });
    expect(shown).toEqual([{ title: 'bob', body: 'while away' }]);
  });

  it('puts the unread count in the document title', async () => {
    const { socket } = await connected();
    socket.receive({ type: 'receive_message', message: message('bob', 'alice', 'one', { id: 5 }) });
    socket.receive({
      type: 'receive_message',
      message: message('carol', 'alice', 'two', { id: 6 }),
    });
    TestBed.tick();
    expect(document.title).toBe('(2) chatd');
  });
});

describe('Session', () => {
  beforeEach(() => localStorage.clear());

  it('survives a reload through localStorage and ends with a reason', () => {
    TestBed.inject(Session).start({ token: 'a', username: 'alice' });
    TestBed.resetTestingModule();
    const reloaded = TestBed.inject(Session);
    expect(reloaded.current()).toEqual({ token: 'a', username: 'alice' });
    reloaded.end('expired');
    expect(reloaded.current()).toBeNull();
    expect(reloaded.endedReason()).toBe('expired');
    expect(localStorage.getItem('chatd.session')).toBeNull();
  });

  it('ignores a corrupt stored session', () => {
    localStorage.setItem('chatd.session', '{not json');
    expect(TestBed.inject(Session).current()).toBeNull();
  });
});
