import { TestBed } from '@angular/core/testing';
import { Api } from '../api/api';
import { FakeApi, FakeSocket, directSummary, message, settle } from '../../testing/fakes';
import { ChatStore } from '../core/chat-store';
import { Nav } from '../core/nav';
import { SOCKET_FACTORY } from '../core/realtime';
import { Session } from '../core/session';
import { ChatShell } from './chat-shell';
import { matchPeers } from './quick-switcher';

describe('matchPeers', () => {
  it('puts names that start with the query before names that contain it', () => {
    expect(matchPeers(['bobby', 'rob', 'alice', 'bob'], 'B')).toEqual(['bobby', 'bob', 'rob']);
    expect(matchPeers(['bobby', 'rob', 'bob'], 'bo')).toEqual(['bobby', 'bob']);
    expect(matchPeers(['b', 'a'], '  ')).toEqual(['b', 'a']);
    expect(matchPeers(['b', 'a'], 'z')).toEqual([]);
  });
});

describe('the chat shell’s keyboard shortcuts', () => {
  let api: FakeApi;

  beforeEach(() => {
    localStorage.clear();
    history.replaceState(null, '', '/');
    FakeSocket.created = [];
    api = new FakeApi();
    api.conversationsResult = [
      // Most recent first: bob, then carol.
      directSummary('bob', { online: true, last: message('bob', 'alice', 'hi', { id: 20 }) }),
      directSummary('carol', { last: message('carol', 'alice', 'yo', { id: 10 }) }),
    ];
    TestBed.configureTestingModule({
      imports: [ChatShell],
      providers: [
        { provide: Api, useValue: api },
        { provide: SOCKET_FACTORY, useValue: (url: string) => new FakeSocket(url) },
      ],
    });
    TestBed.inject(Session).start({ token: 'tok', username: 'alice' });
  });

  afterEach(() => {
    TestBed.inject(ChatStore).stop();
    document.body.innerHTML = '';
  });

  async function render(peer: string | null) {
    const fixture = TestBed.createComponent(ChatShell);
    fixture.componentRef.setInput('conversation', peer);
    document.body.appendChild(fixture.nativeElement);
    await fixture.whenStable();
    await settle();
    await fixture.whenStable();
    const el = fixture.nativeElement as HTMLElement;
    const press = async (key: string, init: KeyboardEventInit = {}) => {
      const target = document.activeElement ?? document.body;
      target.dispatchEvent(
        new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true, ...init }),
      );
      await fixture.whenStable();
    };
    return { fixture, el, press, nav: TestBed.inject(Nav) };
  }

  it('Ctrl+K opens a switcher over my conversations; Enter jumps to the selected one', async () => {
    const { fixture, el, press, nav } = await render(null);
    await press('k', { ctrlKey: true });
    const dialog = el.querySelector<HTMLElement>('[role="dialog"]')!;
    expect(dialog.getAttribute('aria-modal')).toBe('true');
    const input = dialog.querySelector<HTMLInputElement>('[data-testid="switcher-input"]')!;
    expect(document.activeElement).toBe(input);
    const options = () =>
      [...dialog.querySelectorAll<HTMLElement>('[role="option"]')].map((o) => [
        o.querySelector('.name')!.textContent,
        o.getAttribute('aria-selected'),
      ]);
    expect(options()).toEqual([
      ['bob', 'true'],
      ['carol', 'false'],
    ]);
    await press('ArrowDown');
    expect(options()).toEqual([
      ['bob', 'false'],
      ['carol', 'true'],
    ]);
    expect(input.getAttribute('aria-activedescendant')).toBe('switcher-1');

    input.value = 'car';
    input.dispatchEvent(new Event('input'));
    await fixture.whenStable();
    expect(options()).toEqual([['carol', 'true']]);
    await press('Enter');
    expect(el.querySelector('[role="dialog"]')).toBeNull();
    expect(nav.screen()).toEqual({ name: 'chat', key: 'carol' });
  });

  it('Esc closes the switcher and gives focus back, then closes the open conversation', async () => {
    const { el, press, nav } = await render('bob');
    const search = el.querySelector<HTMLInputElement>('#people-search')!;
    const composer = el.querySelector<HTMLTextAreaElement>('[data-testid="composer"]')!;
    composer.focus();
    await press('k', { metaKey: true });
    expect(el.querySelector('[role="dialog"]')).not.toBeNull();
    await press('Escape');
    expect(el.querySelector('[role="dialog"]')).toBeNull();
    expect(document.activeElement).toBe(composer);

    await press('Escape');
    expect(nav.screen()).toEqual({ name: 'chat', key: null });
    expect(document.activeElement).toBe(search);
  });

  it('Esc in a search with text clears the search and leaves the conversation open', async () => {
    const { fixture, el, press, nav } = await render('bob');
    nav.go('/c/bob');
    const search = el.querySelector<HTMLInputElement>('#people-search')!;
    search.focus();
    search.value = 'ca';
    search.dispatchEvent(new Event('input'));
    await fixture.whenStable();
    await press('Escape');
    expect(search.value).toBe('');
    expect(nav.screen()).toEqual({ name: 'chat', key: 'bob' });
  });
});
