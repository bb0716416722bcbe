//! The server's account rules, checked in the browser first so mistakes show inline.

export const USERNAME_MIN = 3;
export const USERNAME_MAX = 32;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;
export const MESSAGE_MAX = 4000;

/** Every rule the name breaks, in one sentence each, so one correction is enough. */
export function usernameProblem(value: string): string | null {
  const name = value.trim();
  if (name.length === 0) return 'Choose a username.';
  const problems: string[] = [];
  if (name.length < USERNAME_MIN) problems.push(`At least ${USERNAME_MIN} characters.`);
  if (name.length > USERNAME_MAX) problems.push(`At most ${USERNAME_MAX} characters.`);
  const others = [...new Set(name.replace(/[a-zA-Z0-9_.-]/g, ''))];
  if (others.length > 0) {
    const named = others.map((c) => (c === ' ' ? 'spaces' : `“${c}”`)).join(', ');
    problems.push(`Use only letters, digits, “_”, “.” and “-” (not ${named}).`);
  }
  return problems.length > 0 ? problems.join(' ') : null;
}

export function passwordProblem(value: string): string | null {
  if (value.length === 0) return 'Enter a password.';
  if (value.length < PASSWORD_MIN) return `At least ${PASSWORD_MIN} characters.`;
  if (value.length > PASSWORD_MAX) return `At most ${PASSWORD_MAX} characters.`;
  return null;
}

/** Length as the server counts it: Unicode scalar values, after trimming. */
export function messageLength(body: string): number {
  return [...body.trim()].length;
}

export type AuthField = 'username' | 'password' | 'form';

/** Maps a server error code to the field it belongs to and the text to show there. */
export function authErrorFor(
  code: string,
  message: string,
  mode: 'signin' | 'signup',
): { field: AuthField; text: string } {
  switch (code) {
    case 'username_taken':
      return { field: 'username', text: 'That username is taken. Try another.' };
    case 'invalid_username':
      return { field: 'username', text: message || 'That username is not allowed.' };
    case 'invalid_password':
      return { field: 'password', text: message || 'That password is not allowed.' };
    case 'invalid_credentials':
      return { field: 'form', text: 'Wrong username or password.' };
    case 'rate_limited':
      return { field: 'form', text: 'Too many attempts. Wait a minute and try again.' };
    case 'network':
      return { field: 'form', text: 'Can’t reach chatd. Check your connection and try again.' };
    default:
      return {
        field: 'form',
        text:
          message || (mode === 'signup' ? 'Could not create the account.' : 'Could not sign in.'),
      };
  }
}
