//! The REST layer: a client typed by the generated OpenAPI schema, plus chatd's error handling.
import { Injectable, InjectionToken, inject } from '@angular/core';
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './generated/schema';
import { Session } from '../core/session';

/** The JSON body of a response, taken from the generated schema whatever the schema calls it. */
type JsonOf<R> = R extends { content: infer C } ? C[keyof C] : never;

export type Token = JsonOf<paths['/api/signin']['post']['responses'][200]>;
export type UserSummary = JsonOf<paths['/api/users']['get']['responses'][200]>[number];
export type MessagePage = JsonOf<paths['/api/messages/{username}']['get']['responses'][200]>;
export type Message = MessagePage['messages'][number];
export type ConversationDto = JsonOf<paths['/api/conversations']['get']['responses'][200]>[number];
export type MemberDto = ConversationDto['members'][number];
export type RoomDto = JsonOf<paths['/api/rooms']['get']['responses'][200]>[number];
export type NewConversation = NonNullable<
  paths['/api/conversations']['post']['requestBody']
>['content']['application/json'];
export type ConversationPatch = NonNullable<
  paths['/api/conversations/{id}']['patch']['requestBody']
>['content']['application/json'];
export type Role = MemberDto['role'];
export type Kind = ConversationDto['kind'];

/** A failed API call: the server's stable `code` and human `message`, or `network` when unreachable. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The fetch used for API calls; tests replace it. */
export const API_FETCH = new InjectionToken<(request: Request) => Promise<Response>>('API_FETCH', {
  providedIn: 'root',
  factory: () => (request: Request) => globalThis.fetch(request),
});

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

function toApiError(status: number, error: unknown): ApiError {
  if (error && typeof error === 'object' && 'code' in error) {
    const { code, message } = error as { code: unknown; message?: unknown };
    return new ApiError(status, String(code), typeof message === 'string' ? message : String(code));
  }
  return new ApiError(
    status,
    status >= 500 ? 'server_error' : 'unexpected',
    `The server answered ${status}.`,
  );
}

@Injectable({ providedIn: 'root' })
export class Api {
  private readonly session = inject(Session);
  private readonly client = createClient<paths>({
    baseUrl: globalThis.location?.origin ?? '',
    fetch: inject(API_FETCH),
  });

  constructor() {
    const auth: Middleware = {
      onRequest: ({ request }) => {
        const token = this.session.token();
        if (token && !request.headers.has('Authorization')) {
          request.headers.set('Authorization', `Bearer ${token}`);
        }
        return request;
      },
      onResponse: ({ request, response }) => {
        // A rejected token means the session is over (expired or signed out elsewhere).
        if (response.status === 401 && request.headers.has('Authorization')) {
          this.session.end('Your session has ended. Please sign in again.');
        }
        return response;
      },
    };
    this.client.use(auth);
  }

  private async call<T>(pending: Promise<Outcome<T>>): Promise<T> {
    let outcome: Outcome<T>;
    try {
      outcome = await pending;
    } catch {
      throw new ApiError(0, 'network', 'Can’t reach chatd. Check your connection.');
    }
    if (outcome.error !== undefined || !outcome.response.ok) {
      throw toApiError(outcome.response.status, outcome.error);
    }
    return outcome.data as T;
  }

  signup(username: string, password: string) {
    return this.call(this.client.POST('/api/signup', { body: { username, password } }));
  }

  signin(username: string, password: string): Promise<Token> {
    return this.call(this.client.POST('/api/signin', { body: { username, password } }));
  }

  async signout(token: string): Promise<void> {
    await this.call(
      this.client.POST('/api/signout', { headers: { Authorization: `Bearer ${token}` } }),
    );
  }

  me() {
    return this.call(this.client.GET('/api/me'));
  }

  users(q: string, limit = 20): Promise<UserSummary[]> {
    return this.call(this.client.GET('/api/users', { params: { query: { q, limit } } }));
  }

  messages(
    username: string,
    page: { before?: number; after?: number; limit?: number } = {},
  ): Promise<MessagePage> {
    return this.call(
      this.client.GET('/api/messages/{username}', { params: { path: { username }, query: page } }),
    );
  }

  send(username: string, body: string, clientId: string): Promise<Message> {
    return this.call(
      this.client.POST('/api/messages/{username}', {
        params: { path: { username } },
        body: { body, client_id: clientId },
      }),
    );
  }

  /** Every conversation I am in, of every kind, most recent activity first. */
  conversations(): Promise<ConversationDto[]> {
    return this.call(this.client.GET('/api/conversations'));
  }

  conversation(id: number): Promise<ConversationDto> {
    return this.call(this.client.GET('/api/conversations/{id}', { params: { path: { id } } }));
  }

  createConversation(body: NewConversation): Promise<ConversationDto> {
    return this.call(this.client.POST('/api/conversations', { body }));
  }

  updateConversation(id: number, patch: ConversationPatch): Promise<ConversationDto> {
    return this.call(
      this.client.PATCH('/api/conversations/{id}', { params: { path: { id } }, body: patch }),
    );
  }

  async deleteConversation(id: number): Promise<void> {
    await this.call(this.client.DELETE('/api/conversations/{id}', { params: { path: { id } } }));
  }

  addMembers(id: number, usernames: string[]): Promise<ConversationDto> {
    return this.call(
      this.client.POST('/api/conversations/{id}/members', {
        params: { path: { id } },
        body: { usernames },
      }),
    );
  }

  /** Removes someone; my own name means I leave. */
  async removeMember(id: number, username: string): Promise<void> {
    await this.call(
      this.client.DELETE('/api/conversations/{id}/members/{username}', {
        params: { path: { id, username } },
      }),
    );
  }

  setRole(id: number, username: string, role: Role): Promise<ConversationDto> {
    return this.call(
      this.client.PUT('/api/conversations/{id}/members/{username}/role', {
        params: { path: { id, username } },
        body: { role },
      }),
    );
  }

  join(id: number): Promise<ConversationDto> {
    return this.call(
      this.client.POST('/api/conversations/{id}/join', { params: { path: { id } } }),
    );
  }

  /** The public rooms whose name or topic contains `q`. */
  rooms(q: string, limit = 50): Promise<RoomDto[]> {
    return this.call(this.client.GET('/api/rooms', { params: { query: { q, limit } } }));
  }

  conversationMessages(
    id: number,
    page: { before?: number; after?: number; limit?: number } = {},
  ): Promise<MessagePage> {
    return this.call(
      this.client.GET('/api/conversations/{id}/messages', {
        params: { path: { id }, query: page },
      }),
    );
  }

  sendToConversation(id: number, body: string, clientId: string): Promise<Message> {
    return this.call(
      this.client.POST('/api/conversations/{id}/messages', {
        params: { path: { id } },
        body: { body, client_id: clientId },
      }),
    );
  }

  async markConversationRead(id: number, upTo: number): Promise<void> {
    await this.call(
      this.client.POST('/api/conversations/{id}/read', {
        params: { path: { id } },
        body: { up_to: upTo },
      }),
    );
  }

  async markRead(username: string, upTo: number): Promise<void> {
    await this.call(
      this.client.POST('/api/messages/{username}/read', {
        params: { path: { username } },
        body: { up_to: upTo },
      }),
    );
  }
}
