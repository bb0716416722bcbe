import { TestBed } from '@angular/core/testing';
import { allowedScreen, Nav, parsePath, pathOf } from './nav';
import { Session } from './session';

describe('navigation', () => {
  it('maps paths to screens and back', () => {
    expect(parsePath('/')).toEqual({ name: 'chat', peer: null });
    expect(parsePath('/signin')).toEqual({ name: 'signin' });
    expect(parsePath('/signup')).toEqual({ name: 'signup' });
    expect(parsePath('/c/bob')).toEqual({ name: 'chat', peer: 'bob' });
    expect(parsePath('/c/a%2Eb')).toEqual({ name: 'chat', peer: 'a.b' });
    expect(parsePath('/c/%E0%A4%A')).toBeNull();
    expect(parsePath('/nowhere')).toBeNull();
    expect(pathOf({ name: 'chat', peer: 'bob' })).toBe('/c/bob');
    expect(pathOf({ name: 'chat', peer: null })).toBe('/');
    expect(pathOf({ name: 'signup' })).toBe('/signup');
  });

  it('sends guests to sign-in and members away from it', () => {
    expect(allowedScreen({ name: 'chat', peer: 'bob' }, false)).toEqual({ name: 'signin' });
    expect(allowedScreen({ name: 'signup' }, false)).toEqual({ name: 'signup' });
    expect(allowedScreen({ name: 'signin' }, true)).toEqual({ name: 'chat', peer: null });
    expect(allowedScreen(null, true)).toEqual({ name: 'chat', peer: null });
    expect(allowedScreen({ name: 'chat', peer: 'bob' }, true)).toEqual({
      name: 'chat',
      peer: 'bob',
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
    expect(nav.screen()).toEqual({ name: 'chat', peer: null });
    expect(location.pathname).toBe('/');

    nav.go('/c/carol');
    TestBed.tick();
    expect(nav.screen()).toEqual({ name: 'chat', peer: 'carol' });
    expect(location.pathname).toBe('/c/carol');

    TestBed.inject(Session).end();
    TestBed.tick();
    expect(nav.screen()).toEqual({ name: 'signin' });
    expect(location.pathname).toBe('/signin');
  });
});
