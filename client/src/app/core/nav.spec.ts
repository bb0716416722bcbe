import { TestBed } from '@angular/core/testing';
import { allowedScreen, Nav, parsePath, pathOf } from './nav';
import { Session } from './session';

describe('navigation', () => {
  it('maps paths to screens and back', () => {
    expect(parsePath('/')).toEqual({ name: 'chat', key: null });
    expect(parsePath('/signin')).toEqual({ name: 'signin' });
    expect(parsePath('/signup')).toEqual({ name: 'signup' });
    expect(parsePath('/c/bob')).toEqual({ name: 'chat', key: 'bob' });
    expect(parsePath('/c/Bob')).toEqual({ name: 'chat', key: 'bob' });
    expect(parsePath('/c/a%2Eb')).toEqual({ name: 'chat', key: 'a.b' });
    expect(parsePath('/c/%E0%A4%A')).toBeNull();
    expect(parsePath('/c/%2312')).toBeNull();
    expect(parsePath('/nowhere')).toBeNull();
    expect(pathOf({ name: 'chat', key: 'bob' })).toBe('/c/bob');
    expect(pathOf({ name: 'chat', key: null })).toBe('/');
    expect(pathOf({ name: 'signup' })).toBe('/signup');
  });

  it('names conversations by id, and the room directory', () => {
    expect(parsePath('/conversations/12')).toEqual({ name: 'chat', key: '#12' });
    expect(parsePath('/conversations/0')).toBeNull();
    expect(parsePath('/conversations/x')).toBeNull();
    expect(parsePath('/rooms')).toEqual({ name: 'rooms' });
    expect(pathOf({ name: 'chat', key: '#12' })).toBe('/conversations/12');
    expect(pathOf({ name: 'rooms' })).toBe('/rooms');
    expect(allowedScreen({ name: 'rooms' }, false)).toEqual({ name: 'signin' });
    expect(allowedScreen({ name: 'rooms' }, true)).toEqual({ name: 'rooms' });
  });

  it('sends guests to sign-in and members away from it', () => {
    expect(allowedScreen({ name: 'chat', key: 'bob' }, false)).toEqual({ name: 'signin' });
    expect(allowedScreen({ name: 'signup' }, false)).toEqual({ name: 'signup' });
    expect(allowedScreen({ name: 'signin' }, true)).toEqual({ name: 'chat', key: null });
    expect(allowedScreen(null, true)).toEqual({ name: 'chat', key: null });
    expect(allowedScreen({ name: 'chat', key: 'bob' }, true)).toEqual({
      name: 'chat',
      key: 'bob',
    });
  });

  it('follows the session and keeps the address bar in step', () => {
    localStorage.clear();
    history.replaceState(null, '', '/c/bob');
    const nav = TestBed.inject(Nav);
    TestBed.tick();
    expect(nav.screen()).toEqual({ name: 'signin' });
    expect(location.pathname).toBe('/signin');

    TestBed.inject(Session).start({ token: 't', username: 'alice' });
    TestBed.tick();
    expect(nav.screen()).toEqual({ name: 'chat', key: null });
    expect(location.pathname).toBe('/');

    nav.go('/c/carol');
    TestBed.tick();
    expect(nav.screen()).toEqual({ name: 'chat', key: 'carol' });
    expect(location.pathname).toBe('/c/carol');

    TestBed.inject(Session).end();
    TestBed.tick();
    expect(nav.screen()).toEqual({ name: 'signin' });
    expect(location.pathname).toBe('/signin');
  });
});
