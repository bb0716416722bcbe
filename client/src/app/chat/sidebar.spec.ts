import { TestBed } from '@angular/core/testing';
import { Api } from '../api/api';
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
import { Sidebar } from './sidebar';

describe('Sidebar', () => {
  let api: FakeApi;

  beforeEach(() => {
    localStorage.clear();
    FakeSocket.created = [];
    api = new FakeApi();
    api.conversationsResult = [
      directSummary('bob', { online: true, last: message('bob', 'alice', 'hi') }),
      directSummary('carol', { last: message('carol', 'alice', 'yo') }),
      directSummary('dave', { online: true, last: message('alice', 'dave', 'hey') }),
    ];
    TestBed.configureTestingModule({
      imports: [Sidebar],
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
    socket.receive({ type: 'ready', username: 'alice', last_id: 0 });
    const fixture = TestBed.createComponent(Sidebar);
    document.body.appendChild(fixture.nativeElement);
    await fixture.whenStable();
    await settle();
    await fixture.whenStable();
    const el = fixture.nativeElement as HTMLElement;
    const peers = () =>
      [...el.querySelectorAll<HTMLElement>('[data-testid="conversation"]')].map(
        (row) => row.dataset['peer'],
      );
    return { fixture, el, socket, store, peers };
  }

  it('puts focus in the search box when nothing else has it', async () => {
    const { el } = await render();
    expect(document.activeElement).toBe(el.querySelector('#people-search'));
  });

  it('shows who of my contacts is online, without searching', async () => {
    const { fixture, el, socket, peers } = await render();
    const filter = el.querySelector<HTMLButtonElement>('[data-testid="online-filter"]')!;
    expect(filter.textContent).toContain('Online now (2)');
    expect(filter.getAttribute('aria-pressed')).toBe('false');
    expect(peers()).toHaveLength(3);

    filter.click();
    await fixture.whenStable();
    expect(filter.getAttribute('aria-pressed')).toBe('true');
    expect(peers().sort()).toEqual(['bob', 'dave']);

    // Presence changes move people in and out of the filtered list live.
    socket.receive({ type: 'presence', username: 'dave', online: false });
    socket.receive({ type: 'presence', username: 'bob', online: false });
    await fixture.whenStable();
    expect(peers()).toEqual([]);
    expect(filter.textContent).toContain('Online now (0)');
    expect(el.textContent).toContain('None of your contacts is online right now.');

    filter.click();
    await fixture.whenStable();
    expect(peers()).toHaveLength(3);
  });

  it('shows typing in the list only for conversations that are not open', async () => {
    const { fixture, el, socket, store } = await render();
    const typingRows = () =>
      [...el.querySelectorAll<HTMLElement>('[data-testid="conversation"]')]
        .filter((row) => row.textContent!.includes('typing…'))
        .map((row) => row.dataset['peer']);
    socket.receive({ type: 'typing', conversation_id: pairId('alice', 'bob'), from: 'bob' });
    socket.receive({ type: 'typing', conversation_id: pairId('alice', 'carol'), from: 'carol' });
    await fixture.whenStable();
    expect(typingRows().sort()).toEqual(['bob', 'carol']);

    // bob's open conversation shows it above its composer instead.
    store.open('bob');
    await fixture.whenStable();
    expect(typingRows()).toEqual(['carol']);
  });
});

describe('Sidebar with rooms and groups', () => {
  beforeEach(() => {
    localStorage.clear();
    FakeSocket.created = [];
    const api = new FakeApi();
    api.conversationsResult = [
      roomSummary(7, {
        name: 'design',
        memberCount: 12,
        unread: 3,
        last: roomMessage(7, 'bob', 'mockups are up', { id: 40 }),
      }),
      directSummary('bob', { online: true, last: message('bob', 'alice', 'hi', { id: 30 }) }),
      roomSummary(3, {
        kind: 'group',
        name: null,
        members: [{ username: 'alice' }, { username: 'carol' }, { username: 'dave' }],
        lastActivity: 20,
      }),
    ];
    TestBed.configureTestingModule({
      imports: [Sidebar],
      providers: [
        { provide: Api, useValue: api },
        { provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) },
      ],
    });
    TestBed.inject(Session).start({ token: 'tok', username: 'alice' });
  });

  afterEach(() => TestBed.inject(ChatStore).stop());

  it('lists rooms and groups apart from direct messages, with member counts, unread and links by id', async () => {
    await TestBed.inject(ChatStore).start();
    FakeSocket.latest().open();
    FakeSocket.latest().receive({ type: 'ready', username: 'alice', last_id: 40 });
    const fixture = TestBed.createComponent(Sidebar);
    await fixture.whenStable();
    const el = fixture.nativeElement as HTMLElement;
    const rows = (section: string) => [
      ...el.querySelectorAll<HTMLElement>(
        `[data-testid="${section}"] [data-testid="conversation"]`,
      ),
    ];
    expect(rows('rooms-section').map((r) => r.dataset['title'])).toEqual([
      'design',
      'carol and dave',
    ]);
    expect(rows('direct-section').map((r) => r.dataset['title'])).toEqual(['bob']);
    const design = rows('rooms-section')[0];
    expect(design.getAttribute('href')).toBe('/conversations/7');
    expect(design.querySelector('[data-testid="member-count"]')!.textContent).toBe('12 members');
    expect(design.querySelector('[data-testid="unread-badge"]')!.getAttribute('aria-label')).toBe(
      '3 unread messages',
    );
    expect(
      design.querySelector('[data-testid="preview"]')!.textContent!.replace(/\s+/g, ' ').trim(),
    ).toBe('bob: mockups are up');
    // Presence dots are for people: only the direct conversation has one.
    expect(design.querySelector('[data-testid="presence"]')).toBeNull();
    expect(rows('direct-section')[0].querySelector('[data-testid="presence"]')!.textContent).toBe(
      'Online',
    );
    expect(el.querySelector('#direct-heading')!.textContent).toBe('Direct messages');
  });
});
