//! Sign in and sign up: one form, inline validation that mirrors the server's rules and codes.
import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  computed,
  inject,
  input,
  signal,
  viewChild,
} from '@angular/core';
import { Api, ApiError } from '../api/api';
import { Nav, NavLink } from '../core/nav';
import { Session } from '../core/session';
import { authErrorFor, passwordProblem, usernameProblem, type AuthField } from '../core/validation';

type Mode = 'signin' | 'signup';

@Component({
  selector: 'app-auth-page',
  imports: [NavLink],
  templateUrl: './auth-page.html',
  styleUrl: './auth-page.css',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class AuthPage {
  private readonly api = inject(Api);
  private readonly nav = inject(Nav);
  protected readonly session = inject(Session);

  readonly mode = input<Mode>('signin');

  protected readonly username = signal('');
  protected readonly password = signal('');
  protected readonly showPassword = signal(false);
  protected readonly busy = signal(false);
  protected readonly submitted = signal(false);
  protected readonly touched = signal<Record<'username' | 'password', boolean>>({
    username: false,
    password: false,
  });
  protected readonly serverErrors = signal<Partial<Record<AuthField, string>>>({});

  private readonly usernameInput =
    viewChild.required<ElementRef<HTMLInputElement>>('usernameInput');
  private readonly passwordInput =
    viewChild.required<ElementRef<HTMLInputElement>>('passwordInput');

  protected readonly isSignup = computed(() => this.mode() === 'signup');

  protected readonly usernameError = computed(() => {
    const server = this.serverErrors().username;
    if (server) return server;
    if (!this.submitted() && !this.touched().username) return null;
    return this.isSignup()
      ? usernameProblem(this.username())
      : this.username().trim()
        ? null
        : 'Enter your username.';
  });

  protected readonly passwordError = computed(() => {
    const server = this.serverErrors().password;
    if (server) return server;
    if (!this.submitted() && !this.touched().password) return null;
    return this.isSignup()
      ? passwordProblem(this.password())
      : this.password()
        ? null
        : 'Enter your password.';
  });

  protected readonly formError = computed(() => this.serverErrors().form ?? null);

  protected edit(field: 'username' | 'password', value: string): void {
    (field === 'username' ? this.username : this.password).set(value);
    this.serverErrors.update(({ [field]: _, form: __, ...rest }) => rest);
  }

  protected touch(field: 'username' | 'password'): void {
    this.touched.update((t) => ({ ...t, [field]: true }));
  }

  protected async submit(event: Event): Promise<void> {
    event.preventDefault();
    if (this.busy()) return;
    this.submitted.set(true);
    this.serverErrors.set({});
    if (this.usernameError()) return this.usernameInput().nativeElement.focus();
    if (this.passwordError()) return this.passwordInput().nativeElement.focus();

    const username = this.username().trim();
    const password = this.password();
    this.busy.set(true);
    try {
      if (this.isSignup()) await this.api.signup(username, password);
      const token = await this.api.signin(username, password);
      this.session.start({ token: token.access_token, username: token.username });
      this.nav.go('/');
    } catch (e) {
      const error =
        e instanceof ApiError ? e : new ApiError(0, 'unexpected', 'Something went wrong.');
      const { field, text } = authErrorFor(error.code, error.message, this.mode());
      this.serverErrors.set({ [field]: text });
      if (field === 'username') this.usernameInput().nativeElement.focus();
      if (field === 'password') this.passwordInput().nativeElement.focus();
    } finally {
      this.busy.set(false);
    }
  }
}
