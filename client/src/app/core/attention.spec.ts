import { titleFor } from './attention';
import { Session } from './session';
import { TestBed } from '@angular/core/testing';

describe('tab title', () => {
  it('carries the unread count', () => {
    expect(titleFor(0)).toBe('chatd');
    expect(titleFor(3)).toBe('(3) chatd');
    expect(titleFor(250)).toBe('(99+) chatd');
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
