//! The root component: shows the screen the URL and the session select.
import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { AuthPage } from './auth/auth-page';
import { ChatShell } from './chat/chat-shell';
import { Nav } from './core/nav';

@Component({
  selector: 'app-root',
  imports: [AuthPage, ChatShell],
  template: `
    @switch (screen().name) {
      @case ('signin') {
        <app-auth-page mode="signin" />
      }
      @case ('signup') {
        <app-auth-page mode="signup" />
      }
      @default {
        <!-- One shell for every signed-in screen: it owns the live connection. -->
        <app-chat-shell [conversation]="conversation()" [view]="view()" />
      }
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class App {
  protected readonly screen = inject(Nav).screen;
  protected readonly conversation = computed(() => {
    const screen = this.screen();
    return screen.name === 'chat' ? screen.key : null;
  });
  protected readonly view = computed(() => (this.screen().name === 'rooms' ? 'rooms' : 'chat'));
}
