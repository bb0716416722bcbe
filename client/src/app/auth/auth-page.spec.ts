import { TestBed } from '@angular/core/testing';
import { Api, ApiError } from '../api/api';
import { Nav } from '../core/nav';
import { Session } from '../core/session';
import { AuthPage } from './auth-page';

describe('AuthPage', () => {
  const api = {
    signup: vi.fn(),
    signin: vi.fn(),
  };

  beforeEach(() => {
    localStorage.clear();
    api.signup.mockReset();
    api.signin.mockReset();
    TestBed.configureTestingModule({
      imports: [AuthPage],
      providers: [{ provide: Api, useValue: api }],
    });
  });

  async function render(mode: 'signin' | 'signup') {
    const fixture = TestBed.createComponent(AuthPage);
    fixture.componentRef.setInput('mode', mode);
    await fixture.whenStable();
    const el = fixture.nativeElement as HTMLElement;
    const type = async (id: string, value: string) => {
      const input = el.querySelector<HTMLInputElement>(`#${id}`)!;
      input.value = value;
      input.dispatchEvent(new Event('input'));
      input.dispatchEvent(new Event('blur'));
      await fixture.whenStable();
    };
    const submit = async () => {
      el.querySelector('form')!.dispatchEvent(new Event('submit', { cancelable: true }));
      await fixture.whenStable();
      await new Promise((r) => setTimeout(r));
      await fixture.whenStable();
    };
    return { fixture, el, type, submit };
  }

  it('shows the server’s username rules inline before anything is sent', async () => {
    const { el, type, submit } = await render('signup');
    await type('username', 'al');
    expect(el.querySelector('#username-error')?.textContent).toContain('At least 3');
    await type('username', 'al ice');
    expect(el.querySelector('#username-error')?.textContent).toContain('letters, digits');
    await type('username', 'A!');
    expect(el.querySelector('#username-error')?.textContent).toBe(
      'At least 3 characters. Use only letters, digits, “_”, “.” and “-” (not “!”).',
    );
    await type('username', 'alice');
    await type('password', 'short');
    await submit();
    expect(el.querySelector('#password-error')?.textContent).toContain('At least 8');
    expect(el.querySelector('#password')!.getAttribute('aria-invalid')).toBe('true');
    expect(api.signup).not.toHaveBeenCalled();
  });

  it('puts a taken username next to the username field', async () => {
    api.signup.mockRejectedValue(new ApiError(409, 'username_taken', 'username is taken'));
    const { el, type, submit } = await render('signup');
    await type('username', 'Alice');
    await type('password', 'correct horse');
    await submit();
    expect(api.signup).toHaveBeenCalledWith('Alice', 'correct horse');
    expect(el.querySelector('#username-error')?.textContent).toContain('That username is taken');
    expect(TestBed.inject(Session).current()).toBeNull();
  });

  it('says wrong credentials once, at the form, without blaming a field', async () => {
    api.signin.mockRejectedValue(
      new ApiError(401, 'invalid_credentials', 'invalid username or password'),
    );
    const { el, type, submit } = await render('signin');
    await type('username', 'alice');
    await type('password', 'wrong password');
    await submit();
    expect(el.querySelector('[role="alert"]')?.textContent).toContain(
      'Wrong username or password.',
    );
    expect(el.querySelector('#username-error')).toBeNull();
  });

  it('signs up, signs in and keeps the session with the canonical username', async () => {
    api.signup.mockResolvedValue({ username: 'alice' });
    api.signin.mockResolvedValue({
      access_token: 't0k',
      token_type: 'Bearer',
      expires_in: 60,
      username: 'alice',
    });
    const navigate = vi.spyOn(TestBed.inject(Nav), 'go').mockImplementation(() => undefined);
    const { type, submit } = await render('signup');
    await type('username', 'Alice');
    await type('password', 'correct horse');
    await submit();
    expect(api.signin).toHaveBeenCalledWith('Alice', 'correct horse');
    expect(TestBed.inject(Session).current()).toEqual({ token: 't0k', username: 'alice' });
    expect(JSON.parse(localStorage.getItem('chatd.session')!)).toEqual({
      token: 't0k',
      username: 'alice',
    });
    expect(navigate).toHaveBeenCalledWith('/');
  });
});
