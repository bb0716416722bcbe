//! Navigation between chatd's screens: the History API behind a signal, with the session as guard.
import { Directive, Injectable, effect, inject, input, signal } from '@angular/core';
import { Session } from './session';

/**
 * `chat.key` names the open conversation: the other person's name for a direct one (`/c/bob`, the
 * first app's links), `#<id>` for any conversation by id (`/conversations/12`).
 */
export type Screen =
  | { name: 'signin' }
  | { name: 'signup' }
  | { name: 'chat'; key: string | null }
  | { name: 'rooms' };

/** The screen a path names, or null for paths the app does not have. */
export function parsePath(path: string): Screen | null {
  if (path === '/signin') return { name: 'signin' };
  if (path === '/signup') return { name: 'signup' };
  if (path === '/rooms' || path === '/rooms/') return { name: 'rooms' };
  if (path === '/' || path === '') return { name: 'chat', key: null };
  const byId = /^\/conversations\/([1-9][0-9]{0,15})\/?$/.exec(path);
  if (byId) return { name: 'chat', key: `#${byId[1]}` };
  const match = /^\/c\/([^/]+)\/?$/.exec(path);
  if (!match) return null;
  try {
    const peer = decodeURIComponent(match[1]).toLowerCase();
    // A name never holds `#`: that would be taken for a conversation id.
    return peer.includes('#') ? null : { name: 'chat', key: peer };
  } catch {
    return null;
  }
}

/** The path of a conversation by its store key. */
export function conversationPath(key: string): string {
  return key.startsWith('#') ? `/conversations/${key.slice(1)}` : `/c/${encodeURIComponent(key)}`;
}

export function pathOf(screen: Screen): string {
  if (screen.name === 'chat') return screen.key ? conversationPath(screen.key) : '/';
  return `/${screen.name}`;
}

/** Guests only see sign-in and sign-up; members never do. */
export function allowedScreen(wanted: Screen | null, signedIn: boolean): Screen {
  const screen = wanted ?? { name: 'chat', key: null };
  const guestScreen = screen.name === 'signin' || screen.name === 'signup';
  if (!signedIn && !guestScreen) return { name: 'signin' };
  if (signedIn && guestScreen) return { name: 'chat', key: null };
  return screen;
}

@Injectable({ providedIn: 'root' })
export class Nav {
  private readonly session = inject(Session);
  private readonly path = signal(globalThis.location?.pathname ?? '/');
  private readonly current = signal<Screen>(
    allowedScreen(parsePath(this.path()), !!this.session.current()),
  );
  readonly screen = this.current.asReadonly();

  constructor() {
    globalThis.addEventListener?.('popstate', () => this.path.set(location.pathname));
    // Resolve the URL against the session; a redirect replaces the address instead of adding to history.
    effect(() => {
      const screen = allowedScreen(parsePath(this.path()), !!this.session.current());
      const target = pathOf(screen);
      if (globalThis.location && location.pathname !== target)
        history.replaceState(null, '', target);
      if (this.path() !== target) this.path.set(target);
      this.current.set(screen);
    });
  }

  go(path: string): void {
    if (globalThis.location && location.pathname !== path) history.pushState(null, '', path);
    this.path.set(path);
  }

  /** Goes to `path` in place of the current entry (a link that turned out to mean another). */
  replace(path: string): void {
    if (globalThis.location && location.pathname !== path) history.replaceState(null, '', path);
    this.path.set(path);
  }
}

/** `<a appLink="/c/bob">`: a real link (new tab, copy address) that navigates in place on a plain click. */
@Directive({
  selector: 'a[appLink]',
  host: { '[attr.href]': 'appLink()', '(click)': 'follow($event)' },
})
export class NavLink {
  private readonly nav = inject(Nav);
  readonly appLink = input.required<string>();

  protected follow(event: MouseEvent): void {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)
      return;
    event.preventDefault();
    this.nav.go(this.appLink());
  }
}
