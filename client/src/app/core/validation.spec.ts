import { authErrorFor, messageLength, passwordProblem, usernameProblem } from './validation';

describe('account rules', () => {
  it('accepts usernames the server accepts', () => {
    for (const name of ['bob', 'Alice_1', 'a.b-c', 'x'.repeat(32)])
      expect(usernameProblem(name)).toBeNull();
  });

  it('rejects usernames the server rejects, saying why', () => {
    expect(usernameProblem('')).toBe('Choose a username.');
    expect(usernameProblem('ab')).toContain('At least 3');
    expect(usernameProblem('x'.repeat(33))).toContain('At most 32');
    expect(usernameProblem('bob smith')).toContain('letters, digits');
    expect(usernameProblem('bøb')).toContain('letters, digits');
  });

  it('names every rule a username breaks, and the characters that are not allowed', () => {
    expect(usernameProblem('A!')).toBe(
      'At least 3 characters. Use only letters, digits, “_”, “.” and “-” (not “!”).',
    );
    expect(usernameProblem('no spaces, é!')).toBe(
      'Use only letters, digits, “_”, “.” and “-” (not spaces, “,”, “é”, “!”).',
    );
    expect(usernameProblem(`${'x'.repeat(33)}#`)).toBe(
      'At most 32 characters. Use only letters, digits, “_”, “.” and “-” (not “#”).',
    );
  });

  it('checks password length bounds', () => {
    expect(passwordProblem('')).toBe('Enter a password.');
    expect(passwordProblem('1234567')).toContain('At least 8');
    expect(passwordProblem('12345678')).toBeNull();
    expect(passwordProblem('x'.repeat(128))).toBeNull();
    expect(passwordProblem('x'.repeat(129))).toContain('At most 128');
  });

  it('counts message length as the server does: trimmed, by code point', () => {
    expect(messageLength('  hi  ')).toBe(2);
    expect(messageLength('👋🏽')).toBe(2);
  });

  it('puts each server error code next to the field it is about', () => {
    expect(authErrorFor('username_taken', 'taken', 'signup')).toEqual({
      field: 'username',
      text: 'That username is taken. Try another.',
    });
    expect(authErrorFor('invalid_username', 'bad name', 'signup').field).toBe('username');
    expect(authErrorFor('invalid_password', 'too short', 'signup')).toEqual({
      field: 'password',
      text: 'too short',
    });
    expect(authErrorFor('invalid_credentials', 'x', 'signin')).toEqual({
      field: 'form',
      text: 'Wrong username or password.',
    });
    expect(authErrorFor('rate_limited', 'x', 'signin').text).toContain('Too many attempts');
    expect(authErrorFor('network', 'x', 'signin').text).toContain('Can’t reach chatd');
  });
});
