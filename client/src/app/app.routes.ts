//! Routes: sign-in/sign-up for guests, the chat shell (with an optional open conversation) for members.
import { inject } from '@angular/core';
import { Router, type CanActivateFn, type Routes } from '@angular/router';
import { AuthPage } from './auth/auth-page';
import { ChatShell } from './chat/chat-shell';
import { ConversationPane } from './chat/conversation-pane';
import { EmptyPane } from './chat/empty-pane';
import { Session } from './core/session';

const signedIn: CanActivateFn = () =>
  inject(Session).current() ? true : inject(Router).createUrlTree(['/signin']);

const signedOut: CanActivateFn = () =>
  inject(Session).current() ? inject(Router).createUrlTree(['/']) : true;

export const routes: Routes = [
  { path: 'signin', component: AuthPage, canActivate: [signedOut], data: { mode: 'signin' } },
  { path: 'signup', component: AuthPage, canActivate: [signedOut], data: { mode: 'signup' } },
  {
    path: '',
    component: ChatShell,
    canActivate: [signedIn],
    children: [
      { path: '', component: EmptyPane },
      { path: 'c/:peer', component: ConversationPane },
    ],
  },
  { path: '**', redirectTo: '' },
];
