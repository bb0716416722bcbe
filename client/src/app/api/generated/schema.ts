/* eslint-disable */
// Generated from client/openapi.json by `npm run api:generate` (openapi-typescript).
// Do not edit by hand: change the server, then run `npm run api:update`.

export type paths = {
    "/api/chats_history": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * My direct conversations.
         * @description Most recent first, each with the other person, whether they are online, my unread count
         *     and the last message (null when there is none yet). `listConversations` lists every kind.
         */
        get: operations["listChats"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/conversations": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * My conversations of every kind.
         * @description Most recent activity first (`last_activity_id`), each with up to 20 members, my role,
         *     unread count and read marker, and the last message (null when there is none).
         */
        get: operations["listConversations"];
        put?: never;
        /**
         * Start a group or a room.
         * @description A group has 3–50 people with the caller and no roles; a room is named (unique, ignoring
         *     case), public or private, and the caller becomes its owner. Every member's sockets get
         *     `conversation_created`. A direct conversation needs no creating: send its first message.
         */
        post: operations["createConversation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/conversations/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * One conversation with its members.
         * @description Up to 500 members, owners first. A conversation the caller may not see answers 404, like
         *     one that does not exist; a public room can be looked at before joining (`my_role` null).
         */
        get: operations["getConversation"];
        put?: never;
        post?: never;
        /**
         * Delete a room, with its messages.
         * @description Its owners and server admins may; members' sockets get `conversation_deleted`. This cannot
         *     be undone.
         */
        delete: operations["deleteConversation"];
        options?: never;
        head?: never;
        /**
         * Rename, set the topic, archive or unarchive.
         * @description A room's owners and admins may change it; anyone in a group may rename it. Fields left
         *     out stay as they are. An archived room can be read but not written to.
         */
        patch: operations["updateConversation"];
        trace?: never;
    };
    "/api/conversations/{id}/join": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Join a public room.
         * @description Joining a room one is already in changes nothing. Private rooms are joined by being added.
         */
        post: operations["joinRoom"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/conversations/{id}/members": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Add people to a group or room.
         * @description Those already in are left as they are. In a room, owners and admins add people (with a
         *     role); in a group, any member may.
         */
        post: operations["addMembers"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/conversations/{id}/members/{username}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /**
         * Remove someone, or leave.
         * @description My own name means I leave. The last owner of a room must make someone else owner first
         *     (409 `last_owner`).
         */
        delete: operations["removeMember"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/conversations/{id}/members/{username}/role": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Give a member of a room another role.
         * @description Its owners may. The last owner cannot step down (409 `last_owner`).
         */
        put: operations["setRole"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/conversations/{id}/messages": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * A page of a conversation's timeline: messages and events.
         * @description Without `before` and `after`: the newest `limit` entries. With `before`: the newest
         *     `limit` entries older than it. With `after`: the oldest `limit` entries newer than it
         *     (catching up). With both: entries strictly between them, oldest first from `after`. Pages
         *     are always in ascending id order; `has_more` says whether more entries lie beyond the
         *     page in the direction of travel (older without `after`, newer with it).
         */
        get: operations["getConversationMessages"];
        put?: never;
        /**
         * Send a message to a conversation I am a member of.
         * @description 201 once it is committed; it is then delivered to every member's sockets. A resend with
         *     the same `client_id` answers 200 with the stored message and delivers nothing again.
         */
        post: operations["sendToConversation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/conversations/{id}/read": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Move my read marker.
         * @description It never moves back and never beyond the newest entry; the stored marker is returned. My
         *     other sockets get `read_marker`, the other members of a direct or group conversation `read`.
         */
        post: operations["markConversationRead"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Liveness: the process is up.
         * @description Touches nothing else, so it answers even when the database does not; use `ready` to know
         *     whether requests can be served.
         */
        get: operations["health"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/me": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The signed-in user.
         * @description A cheap way to check that a token still works.
         */
        get: operations["me"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/messages/{username}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * A page of my conversation with `username`.
         * @description Without `before` and `after`: the newest `limit` entries. With `before`: the newest
         *     `limit` entries older than it. With `after`: the oldest `limit` entries newer than it
         *     (catching up). With both: entries strictly between them, oldest first from `after`. Pages
         *     are always in ascending id order; `has_more` says whether more entries lie beyond the
         *     page in the direction of travel (older without `after`, newer with it).
         *
         *     A conversation that has not started yet is an empty page.
         */
        get: operations["getMessages"];
        put?: never;
        /**
         * Send a message to `username`, online or not.
         * @description 201 once it is committed; it is then delivered to every socket of both people. A resend
         *     with the same `client_id` answers 200 with the stored message and delivers nothing again;
         *     the same `client_id` with another conversation or text is 409 `client_id_conflict`.
         */
        post: operations["sendMessage"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/messages/{username}/read": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Mark my conversation with `username` read up to a message id.
         * @description The marker never moves back and never goes beyond the newest message; the stored marker is
         *     returned. Their sockets get a `read` frame, my other sockets `read_marker`.
         */
        post: operations["markRead"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/read_markers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Read markers of my direct conversations.
         * @description Both markers of each: what I have read, and what the other person has read of mine
         *     ("seen"), so both survive a reload.
         */
        get: operations["listReadMarkers"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readiness: the server can serve requests.
         * @description 200 when its database answers, 503 `unavailable` when it does not (a load balancer should
         *     send no traffic to it then). A cluster node whose bus is down is still ready: it serves
         *     and commits, and reads other nodes' messages from the database meanwhile.
         */
        get: operations["ready"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/rooms": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The directory of public rooms.
         * @description Those whose name or topic contains `q` (all when empty), with whether I am in each.
         */
        get: operations["listRooms"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/signin": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Sign in and receive a bearer token.
         * @description Unknown users and wrong passwords get the same answer (401 `invalid_credentials`). The
         *     token is sent as `Authorization: Bearer <access_token>` and on the WebSocket's `auth` frame;
         *     it expires after `expires_in` seconds, and each sign-in is a session of its own that
         *     `signout` ends. Repeated failures are limited per account and per address (429).
         */
        post: operations["signin"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/signout": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Sign out: revoke this token.
         * @description The sockets opened with this token are closed (close code 4401); the user's other sessions
         *     are untouched.
         */
        post: operations["signout"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/signup": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create an account.
         * @description Usernames are case-insensitive and stored in lowercase. Sign-ups are limited per address
         *     (`rate_limited`, 429 with `Retry-After`); a server busy hashing passwords answers 503
         *     `server_busy` with `Retry-After`. The new account is not signed in: call `signin` next.
         */
        post: operations["signup"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/users": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Find people by name.
         * @description Users whose name contains `q` (all users when empty), online or not, best matches first;
         *     the caller is not listed. `online` is true only for people whose presence the caller may
         *     see (who have written to them); for everyone else it is false.
         */
        get: operations["searchUsers"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
};
export type webhooks = Record<string, never>;
export type components = {
    schemas: {
        /**
         * AddMembers
         * @example {
         *       "role": "member",
         *       "usernames": [
         *         "dave"
         *       ]
         *     }
         */
        AddMembers: {
            /** @description The role to give them in a room; `member` when left out. */
            role?: components["schemas"]["RoleDto"] | null;
            /** @description No one twice, at most 1,000 at once. */
            usernames: string[];
        };
        /**
         * @description The cluster's bus as this node sees it.
         * @enum {string}
         */
        BusState: "none" | "connected" | "disconnected";
        /**
         * ChatSummary
         * @example {
         *       "last_message": {
         *         "body": "Lunch at noon?",
         *         "client_id": "c-7f3a2b",
         *         "conversation_id": 7,
         *         "created_at": "2026-12-01T11:58:03.512Z",
         *         "event": null,
         *         "from": "alice",
         *         "id": 42,
         *         "kind": "text",
         *         "to": "bob"
         *       },
         *       "online": true,
         *       "unread": 2,
         *       "username": "bob"
         *     }
         */
        ChatSummary: {
            last_message: components["schemas"]["MessageDto"] | null;
            online: boolean;
            /**
             * Format: uint64
             * @description Messages from them I have not read (counted up to 9999).
             */
            unread: number;
            /** @description The other person. */
            username: string;
        };
        /**
         * ConversationDto
         * @description A conversation as the caller sees it.
         * @example {
         *       "archived": false,
         *       "created_at": "2026-12-01T09:31:12.004Z",
         *       "id": 12,
         *       "kind": "room",
         *       "last_activity_id": 57,
         *       "last_message": null,
         *       "member_count": 1,
         *       "members": [
         *         {
         *           "online": true,
         *           "read_up_to": 57,
         *           "role": "owner",
         *           "username": "alice"
         *         }
         *       ],
         *       "my_role": "owner",
         *       "name": "general",
         *       "read_up_to": 57,
         *       "topic": "Anything goes",
         *       "unread": 0,
         *       "visibility": "public"
         *     }
         */
        ConversationDto: {
            archived: boolean;
            /** Format: date-time */
            created_at: string;
            /** Format: int64 */
            id: number;
            kind: components["schemas"]["KindDto"];
            /**
             * Format: int64
             * @description The newest stream id in the conversation, message or event: what "recent activity" sorts by.
             */
            last_activity_id: number;
            /** @description The newest message (events do not count). */
            last_message: components["schemas"]["MessageDto"] | null;
            /** Format: uint64 */
            member_count: number;
            /**
             * @description Owners first, then admins, then members, by name; the first 500 of a larger room (the
             *     conversation list gives the first 20).
             */
            members: components["schemas"]["MemberDto"][];
            /** @description The caller's role; null when they are not a member (a public room they look at). */
            my_role: components["schemas"]["RoleDto"] | null;
            /** @description A room's name, or a renamed group's; null otherwise. */
            name: string | null;
            /**
             * Format: int64
             * @description The caller's read marker.
             */
            read_up_to: number;
            /** @description A room's topic; null otherwise. */
            topic: string | null;
            /**
             * Format: uint64
             * @description Messages from others above the caller's read marker (counted up to 9999).
             */
            unread: number;
            /** @description A room's visibility; null otherwise. */
            visibility: components["schemas"]["VisibilityDto"] | null;
        };
        /**
         * ConversationPatchBody
         * @example {
         *       "topic": "Release week: keep it short"
         *     }
         */
        ConversationPatchBody: {
            /** @description Archive (read-only, still readable) or unarchive a room. */
            archived?: boolean | null;
            /** @description A new name (rooms and groups). */
            name?: string | null;
            /** @description A new topic (rooms); empty clears it. */
            topic?: string | null;
        };
        /**
         * ConversationReadState
         * @example {
         *       "conversation_id": 12,
         *       "up_to": 57
         *     }
         */
        ConversationReadState: {
            /** Format: int64 */
            conversation_id: number;
            /**
             * Format: int64
             * @description My read marker as stored (never beyond the newest message, never moving back).
             */
            up_to: number;
        };
        /**
         * Credentials
         * @example {
         *       "password": "correct horse battery",
         *       "username": "alice"
         *     }
         */
        Credentials: {
            /** @description 8–128 characters. */
            password: string;
            /** @description 3–32 characters of a-z, 0-9, `_`, `.`, `-`; case-insensitive. */
            username: string;
        };
        /**
         * ErrorBody
         * @description Every error body chatd sends.
         * @example {
         *       "code": "conversation_not_found",
         *       "message": "no such conversation"
         *     }
         */
        ErrorBody: {
            /** @description Stable identifier to match on; each operation lists the codes it can answer with. */
            code: components["schemas"]["ErrorCode"];
            /** @description Human-readable explanation, for people rather than programs. */
            message: string;
        };
        /**
         * @description Every `code` an error body or error frame can carry: the domain's, and those of the HTTP and
         *     WebSocket boundaries (a path that does not exist, a frame that is not JSON). Released codes
         *     never change; the OpenAPI and AsyncAPI documents list them from here.
         * @enum {string}
         */
        ErrorCode: "invalid_username" | "invalid_password" | "username_taken" | "invalid_credentials" | "account_disabled" | "unauthorized" | "user_not_found" | "invalid_name" | "invalid_topic" | "invalid_role" | "too_many_members" | "too_few_members" | "conversation_not_found" | "not_a_member" | "forbidden" | "last_owner" | "archived" | "name_taken" | "empty_message" | "message_too_long" | "invalid_client_id" | "client_id_conflict" | "cannot_message_self" | "invalid_parameter" | "rate_limited" | "unavailable" | "server_busy" | "internal_error" | "not_found" | "invalid_body" | "bad_request" | "method_not_allowed" | "payload_too_large" | "unsupported_media_type" | "request_timeout" | "forbidden_origin" | "invalid_json" | "invalid_frame" | "unknown_type" | "already_authenticated";
        /**
         * HistoryDto
         * @example {
         *       "has_more": true,
         *       "messages": [
         *         {
         *           "body": "Lunch at noon?",
         *           "client_id": "c-7f3a2b",
         *           "conversation_id": 7,
         *           "created_at": "2026-12-01T11:58:03.512Z",
         *           "event": null,
         *           "from": "alice",
         *           "id": 42,
         *           "kind": "text",
         *           "to": "bob"
         *         }
         *       ]
         *     }
         */
        HistoryDto: {
            /** @description Whether more messages lie beyond this page (older ones, or newer ones when paging with `after`). */
            has_more: boolean;
            /** @description Ascending by id. */
            messages: components["schemas"]["MessageDto"][];
        };
        /** @enum {string} */
        KindDto: "direct" | "group" | "room";
        /**
         * Me
         * @example {
         *       "created_at": "2026-12-01T09:30:00.000Z",
         *       "is_admin": false,
         *       "username": "alice"
         *     }
         */
        Me: {
            /** Format: date-time */
            created_at: string;
            is_admin: boolean;
            username: string;
        };
        /**
         * MemberDto
         * @example {
         *       "online": true,
         *       "read_up_to": 57,
         *       "role": "owner",
         *       "username": "alice"
         *     }
         */
        MemberDto: {
            /** @description Whether they are online (as far as the caller may know). */
            online: boolean;
            /**
             * Format: int64
             * @description How far they have read (for "seen by" in groups).
             */
            read_up_to: number;
            /** @description `member` for everyone in direct and group conversations. */
            role: components["schemas"]["RoleDto"];
            username: string;
        };
        /**
         * MessageDto
         * @description A stored message, or an event shown as a line of the timeline (`kind: "event"`); the same
         *     shape as in WebSocket frames.
         * @example {
         *       "body": "Lunch at noon?",
         *       "client_id": "c-7f3a2b",
         *       "conversation_id": 7,
         *       "created_at": "2026-12-01T11:58:03.512Z",
         *       "event": null,
         *       "from": "alice",
         *       "id": 42,
         *       "kind": "text",
         *       "to": "bob"
         *     }
         */
        MessageDto: {
            /** @description The text (for an event: a sentence describing it). */
            body: string;
            /** @description The sender's idempotency key. */
            client_id: string;
            /** Format: int64 */
            conversation_id: number;
            /** Format: date-time */
            created_at: string;
            /**
             * @description For an event: what happened, as in the event's WebSocket frame (`type`, `by`, …); null for
             *     a message.
             */
            event: unknown;
            /** @description Sender's username (for an event: who made the change). */
            from: string;
            /**
             * Format: int64
             * @description Stream id, increasing in commit order (events share the counter).
             */
            id: number;
            kind: components["schemas"]["MessageKind"];
            /** @description The other person, in a direct conversation only (null otherwise). */
            to: string | null;
        };
        /** @enum {string} */
        MessageKind: "text" | "event";
        /**
         * @description A group (3–50 people with the caller, no topic) or a room (named).
         * @example {
         *       "kind": "room",
         *       "members": [
         *         "bob",
         *         "carol"
         *       ],
         *       "name": "general",
         *       "topic": "Anything goes",
         *       "visibility": "public"
         *     }
         */
        NewConversationBody: {
            /** @enum {string} */
            kind: "group";
            /**
             * @description The people to start with, besides the caller (who becomes a room's owner); no one twice,
             *     at most 1,000.
             * @default []
             */
            members: string[];
            /** @description Required for a room (unique, ignoring case); optional for a group. */
            name?: string | null;
        } | {
            /** @enum {string} */
            kind: "room";
            /**
             * @description The people to start with, besides the caller (who becomes a room's owner); no one twice,
             *     at most 1,000.
             * @default []
             */
            members: string[] | null;
            /** @description Required for a room (unique, ignoring case); optional for a group. */
            name: string;
            /** @description Rooms only. */
            topic?: string | null;
            /** @description Rooms only; `public` when left out. */
            visibility?: components["schemas"]["VisibilityDto"] | null;
        };
        /**
         * NewMessage
         * @example {
         *       "body": "Lunch at noon?",
         *       "client_id": "c-7f3a2b"
         *     }
         */
        NewMessage: {
            /** @description At least one character after trimming, at most `limits.max_message_chars`. */
            body: string;
            /**
             * @description Idempotency key, 1–64 characters and no control characters: a resend with the same key
             *     returns the stored message and delivers nothing twice.
             */
            client_id?: string | null;
        };
        /**
         * Readiness
         * @description What a node depends on, checked.
         * @example {
         *       "bus": "connected",
         *       "database": "ok",
         *       "status": "ok"
         *     }
         */
        Readiness: {
            bus: components["schemas"]["BusState"];
            database: components["schemas"]["StatusValue"];
            status: components["schemas"]["StatusValue"];
        };
        /**
         * ReadMarker
         * @example {
         *       "up_to": 42
         *     }
         */
        ReadMarker: {
            /**
             * Format: int64
             * @description The newest message id I have read.
             */
            up_to: number;
        };
        /**
         * ReadMarkers
         * @example {
         *       "peer_read_up_to": 40,
         *       "read_up_to": 42,
         *       "username": "bob"
         *     }
         */
        ReadMarkers: {
            /**
             * Format: int64
             * @description Their read marker: the newest of my messages they have read ("seen").
             */
            peer_read_up_to: number;
            /**
             * Format: int64
             * @description My read marker: the newest message id I have read.
             */
            read_up_to: number;
            /** @description The other person. */
            username: string;
        };
        /**
         * ReadState
         * @example {
         *       "peer": "bob",
         *       "up_to": 42
         *     }
         */
        ReadState: {
            peer: string;
            /**
             * Format: int64
             * @description My read marker as stored (never beyond the newest message, never moving back).
             */
            up_to: number;
        };
        /**
         * RoleBody
         * @example {
         *       "role": "admin"
         *     }
         */
        RoleBody: {
            role: components["schemas"]["RoleDto"];
        };
        /** @enum {string} */
        RoleDto: "owner" | "admin" | "member";
        /**
         * RoomDto
         * @example {
         *       "id": 12,
         *       "joined": true,
         *       "member_count": 3,
         *       "name": "general",
         *       "topic": "Anything goes"
         *     }
         */
        RoomDto: {
            /** Format: int64 */
            id: number;
            /** @description Whether the caller is a member. */
            joined: boolean;
            /** Format: uint64 */
            member_count: number;
            name: string;
            topic: string | null;
        };
        /**
         * SignedUp
         * @example {
         *       "username": "alice"
         *     }
         */
        SignedUp: {
            username: string;
        };
        /**
         * Status
         * @example {
         *       "status": "ok"
         *     }
         */
        Status: {
            status: components["schemas"]["StatusValue"];
        };
        /** @enum {string} */
        StatusValue: "ok";
        /**
         * Token
         * @example {
         *       "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
         *       "expires_in": 86400,
         *       "token_type": "Bearer",
         *       "username": "alice"
         *     }
         */
        Token: {
            access_token: string;
            /**
             * Format: uint64
             * @description Seconds until the token expires.
             */
            expires_in: number;
            token_type: components["schemas"]["TokenType"];
            username: string;
        };
        /** @enum {string} */
        TokenType: "Bearer";
        /**
         * UserDto
         * @example {
         *       "online": true,
         *       "username": "bob"
         *     }
         */
        UserDto: {
            /** @description Online, as far as the caller may know: false for people who have not written to them. */
            online: boolean;
            username: string;
        };
        /** @enum {string} */
        VisibilityDto: "public" | "private";
    };
    responses: {
        /** @description Internal Server Error: `internal_error`. */
        InternalError: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description Payload Too Large: `payload_too_large`. */
        PayloadTooLarge: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description Too Many Requests: `rate_limited`. */
        RateLimited: {
            headers: {
                /** @description Seconds to wait before trying again. */
                "Retry-After": number;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description Request Timeout: `request_timeout`. */
        RequestTimeout: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description Unauthorized: `unauthorized`. */
        Unauthorized: {
            headers: {
                /** @description `Bearer realm="chatd"`: send a token from `signin` (RFC 6750). */
                "WWW-Authenticate": string;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description Service Unavailable: `unavailable`. */
        Unavailable: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description Service Unavailable: `unavailable`, `server_busy`. */
        UnavailableOrBusy: {
            headers: {
                /** @description With `server_busy`: seconds to wait before trying again. */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description Unsupported Media Type: `unsupported_media_type`. */
        UnsupportedMediaType: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
    };
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
};
export type AddMembers = components['schemas']['AddMembers'];
export type BusState = components['schemas']['BusState'];
export type ChatSummary = components['schemas']['ChatSummary'];
export type ConversationDto = components['schemas']['ConversationDto'];
export type ConversationPatchBody = components['schemas']['ConversationPatchBody'];
export type ConversationReadState = components['schemas']['ConversationReadState'];
export type Credentials = components['schemas']['Credentials'];
export type ErrorBody = components['schemas']['ErrorBody'];
export type ErrorCode = components['schemas']['ErrorCode'];
export type HistoryDto = components['schemas']['HistoryDto'];
export type KindDto = components['schemas']['KindDto'];
export type Me = components['schemas']['Me'];
export type MemberDto = components['schemas']['MemberDto'];
export type MessageDto = components['schemas']['MessageDto'];
export type MessageKind = components['schemas']['MessageKind'];
export type NewConversationBody = components['schemas']['NewConversationBody'];
export type NewMessage = components['schemas']['NewMessage'];
export type Readiness = components['schemas']['Readiness'];
export type ReadMarker = components['schemas']['ReadMarker'];
export type ReadMarkers = components['schemas']['ReadMarkers'];
export type ReadState = components['schemas']['ReadState'];
export type RoleBody = components['schemas']['RoleBody'];
export type RoleDto = components['schemas']['RoleDto'];
export type RoomDto = components['schemas']['RoomDto'];
export type SignedUp = components['schemas']['SignedUp'];
export type Status = components['schemas']['Status'];
export type StatusValue = components['schemas']['StatusValue'];
export type Token = components['schemas']['Token'];
export type TokenType = components['schemas']['TokenType'];
export type UserDto = components['schemas']['UserDto'];
export type VisibilityDto = components['schemas']['VisibilityDto'];
export type ResponseInternalError = components['responses']['InternalError'];
export type ResponsePayloadTooLarge = components['responses']['PayloadTooLarge'];
export type ResponseRateLimited = components['responses']['RateLimited'];
export type ResponseRequestTimeout = components['responses']['RequestTimeout'];
export type ResponseUnauthorized = components['responses']['Unauthorized'];
export type ResponseUnavailable = components['responses']['Unavailable'];
export type ResponseUnavailableOrBusy = components['responses']['UnavailableOrBusy'];
export type ResponseUnsupportedMediaType = components['responses']['UnsupportedMediaType'];
export type $defs = Record<string, never>;
export interface operations {
    listChats: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description My direct conversations, most recent first. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example [
                     *       {
                     *         "last_message": {
                     *           "body": "Lunch at noon?",
                     *           "client_id": "c-7f3a2b",
                     *           "conversation_id": 7,
                     *           "created_at": "2026-12-01T11:58:03.512Z",
                     *           "event": null,
                     *           "from": "alice",
                     *           "id": 42,
                     *           "kind": "text",
                     *           "to": "bob"
                     *         },
                     *         "online": true,
                     *         "unread": 2,
                     *         "username": "bob"
                     *       }
                     *     ]
                     */
                    "application/json": components["schemas"]["ChatSummary"][];
                };
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    listConversations: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description My conversations, most recent activity first. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example [
                     *       {
                     *         "archived": false,
                     *         "created_at": "2026-12-01T09:31:12.004Z",
                     *         "id": 12,
                     *         "kind": "room",
                     *         "last_activity_id": 57,
                     *         "last_message": null,
                     *         "member_count": 1,
                     *         "members": [
                     *           {
                     *             "online": true,
                     *             "read_up_to": 57,
                     *             "role": "owner",
                     *             "username": "alice"
                     *           }
                     *         ],
                     *         "my_role": "owner",
                     *         "name": "general",
                     *         "read_up_to": 57,
                     *         "topic": "Anything goes",
                     *         "unread": 0,
                     *         "visibility": "public"
                     *       }
                     *     ]
                     */
                    "application/json": components["schemas"]["ConversationDto"][];
                };
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    createConversation: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "kind": "room",
                 *       "members": [
                 *         "bob",
                 *         "carol"
                 *       ],
                 *       "name": "general",
                 *       "topic": "Anything goes",
                 *       "visibility": "public"
                 *     }
                 */
                "application/json": components["schemas"]["NewConversationBody"];
            };
        };
        responses: {
            /** @description Created; every member's sockets learn it (`conversation_created`). */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "archived": false,
                     *       "created_at": "2026-12-01T09:31:12.004Z",
                     *       "id": 12,
                     *       "kind": "room",
                     *       "last_activity_id": 57,
                     *       "last_message": null,
                     *       "member_count": 1,
                     *       "members": [
                     *         {
                     *           "online": true,
                     *           "read_up_to": 57,
                     *           "role": "owner",
                     *           "username": "alice"
                     *         }
                     *       ],
                     *       "my_role": "owner",
                     *       "name": "general",
                     *       "read_up_to": 57,
                     *       "topic": "Anything goes",
                     *       "unread": 0,
                     *       "visibility": "public"
                     *     }
                     */
                    "application/json": components["schemas"]["ConversationDto"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_name`, `invalid_topic`, `invalid_parameter`, `too_few_members`, `too_many_members`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Not Found: `user_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            /** @description Conflict: `name_taken`. */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    getConversation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The conversation as the caller sees it. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "archived": false,
                     *       "created_at": "2026-12-01T09:31:12.004Z",
                     *       "id": 12,
                     *       "kind": "room",
                     *       "last_activity_id": 57,
                     *       "last_message": null,
                     *       "member_count": 1,
                     *       "members": [
                     *         {
                     *           "online": true,
                     *           "read_up_to": 57,
                     *           "role": "owner",
                     *           "username": "alice"
                     *         }
                     *       ],
                     *       "my_role": "owner",
                     *       "name": "general",
                     *       "read_up_to": 57,
                     *       "topic": "Anything goes",
                     *       "unread": 0,
                     *       "visibility": "public"
                     *     }
                     */
                    "application/json": components["schemas"]["ConversationDto"];
                };
            };
            /** @description Bad Request: `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    deleteConversation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Done; the members' sockets learn it. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Bad Request: `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    updateConversation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "topic": "Release week: keep it short"
                 *     }
                 */
                "application/json": components["schemas"]["ConversationPatchBody"];
            };
        };
        responses: {
            /** @description The conversation as changed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "archived": false,
                     *       "created_at": "2026-12-01T09:31:12.004Z",
                     *       "id": 12,
                     *       "kind": "room",
                     *       "last_activity_id": 57,
                     *       "last_message": null,
                     *       "member_count": 1,
                     *       "members": [
                     *         {
                     *           "online": true,
                     *           "read_up_to": 57,
                     *           "role": "owner",
                     *           "username": "alice"
                     *         }
                     *       ],
                     *       "my_role": "owner",
                     *       "name": "general",
                     *       "read_up_to": 57,
                     *       "topic": "Anything goes",
                     *       "unread": 0,
                     *       "visibility": "public"
                     *     }
                     */
                    "application/json": components["schemas"]["ConversationDto"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_parameter`, `invalid_name`, `invalid_topic`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`, `archived`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            /** @description Conflict: `name_taken`. */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    joinRoom: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The room as the new member sees it. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "archived": false,
                     *       "created_at": "2026-12-01T09:31:12.004Z",
                     *       "id": 12,
                     *       "kind": "room",
                     *       "last_activity_id": 57,
                     *       "last_message": null,
                     *       "member_count": 1,
                     *       "members": [
                     *         {
                     *           "online": true,
                     *           "read_up_to": 57,
                     *           "role": "owner",
                     *           "username": "alice"
                     *         }
                     *       ],
                     *       "my_role": "owner",
                     *       "name": "general",
                     *       "read_up_to": 57,
                     *       "topic": "Anything goes",
                     *       "unread": 0,
                     *       "visibility": "public"
                     *     }
                     */
                    "application/json": components["schemas"]["ConversationDto"];
                };
            };
            /** @description Bad Request: `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`, `archived`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    addMembers: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "role": "member",
                 *       "usernames": [
                 *         "dave"
                 *       ]
                 *     }
                 */
                "application/json": components["schemas"]["AddMembers"];
            };
        };
        responses: {
            /** @description The conversation with its new members. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "archived": false,
                     *       "created_at": "2026-12-01T09:31:12.004Z",
                     *       "id": 12,
                     *       "kind": "room",
                     *       "last_activity_id": 57,
                     *       "last_message": null,
                     *       "member_count": 1,
                     *       "members": [
                     *         {
                     *           "online": true,
                     *           "read_up_to": 57,
                     *           "role": "owner",
                     *           "username": "alice"
                     *         }
                     *       ],
                     *       "my_role": "owner",
                     *       "name": "general",
                     *       "read_up_to": 57,
                     *       "topic": "Anything goes",
                     *       "unread": 0,
                     *       "visibility": "public"
                     *     }
                     */
                    "application/json": components["schemas"]["ConversationDto"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_parameter`, `too_many_members`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`, `archived`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `user_not_found`, `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    removeMember: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
                /** @description The member's username (case-insensitive); my own to leave. */
                username: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Done; the members' sockets learn it. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Bad Request: `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`, `archived`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `user_not_found`, `not_a_member`, `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Conflict: `last_owner`. */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    setRole: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
                /** @description The member's username (case-insensitive). */
                username: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "role": "admin"
                 *     }
                 */
                "application/json": components["schemas"]["RoleBody"];
            };
        };
        responses: {
            /** @description The room with the new role. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "archived": false,
                     *       "created_at": "2026-12-01T09:31:12.004Z",
                     *       "id": 12,
                     *       "kind": "room",
                     *       "last_activity_id": 57,
                     *       "last_message": null,
                     *       "member_count": 1,
                     *       "members": [
                     *         {
                     *           "online": true,
                     *           "read_up_to": 57,
                     *           "role": "owner",
                     *           "username": "alice"
                     *         }
                     *       ],
                     *       "my_role": "owner",
                     *       "name": "general",
                     *       "read_up_to": 57,
                     *       "topic": "Anything goes",
                     *       "unread": 0,
                     *       "visibility": "public"
                     *     }
                     */
                    "application/json": components["schemas"]["ConversationDto"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`, `archived`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `user_not_found`, `not_a_member`, `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            /** @description Conflict: `last_owner`. */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    getConversationMessages: {
        parameters: {
            query?: {
                /**
                 * @description Only entries with a larger id: the page starts right after it (page forwards with the
                 *     largest id of the previous page).
                 */
                after?: number;
                /**
                 * @description Only entries with a smaller id: the page ends right before it (page backwards with the
                 *     smallest id of the previous page).
                 */
                before?: number;
                /** @description How many entries a page holds at most (at most `limits.max_page_size`, 100 by default). */
                limit?: number;
            };
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of the timeline, ascending by id. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "has_more": true,
                     *       "messages": [
                     *         {
                     *           "body": "Lunch at noon?",
                     *           "client_id": "c-7f3a2b",
                     *           "conversation_id": 7,
                     *           "created_at": "2026-12-01T11:58:03.512Z",
                     *           "event": null,
                     *           "from": "alice",
                     *           "id": 42,
                     *           "kind": "text",
                     *           "to": "bob"
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": components["schemas"]["HistoryDto"];
                };
            };
            /** @description Bad Request: `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    sendToConversation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "body": "Lunch at noon?",
                 *       "client_id": "c-7f3a2b"
                 *     }
                 */
                "application/json": components["schemas"]["NewMessage"];
            };
        };
        responses: {
            /** @description A resend of a `client_id` already stored: the stored message, delivered to no one again. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "body": "Lunch at noon?",
                     *       "client_id": "c-7f3a2b",
                     *       "conversation_id": 7,
                     *       "created_at": "2026-12-01T11:58:03.512Z",
                     *       "event": null,
                     *       "from": "alice",
                     *       "id": 42,
                     *       "kind": "text",
                     *       "to": "bob"
                     *     }
                     */
                    "application/json": components["schemas"]["MessageDto"];
                };
            };
            /** @description Stored, acknowledged and delivered. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "body": "Lunch at noon?",
                     *       "client_id": "c-7f3a2b",
                     *       "conversation_id": 7,
                     *       "created_at": "2026-12-01T11:58:03.512Z",
                     *       "event": null,
                     *       "from": "alice",
                     *       "id": 42,
                     *       "kind": "text",
                     *       "to": "bob"
                     *     }
                     */
                    "application/json": components["schemas"]["MessageDto"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_parameter`, `empty_message`, `message_too_long`, `invalid_client_id`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`, `archived`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            /** @description Conflict: `client_id_conflict`. */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    markConversationRead: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The conversation's id. */
                id: number;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "up_to": 42
                 *     }
                 */
                "application/json": components["schemas"]["ReadMarker"];
            };
        };
        responses: {
            /** @description The read marker as stored. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "conversation_id": 12,
                     *       "up_to": 57
                     *     }
                     */
                    "application/json": components["schemas"]["ConversationReadState"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `forbidden`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `conversation_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    health: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The process is up. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": "ok"
                     *     }
                     */
                    "application/json": components["schemas"]["Status"];
                };
            };
        };
    };
    me: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The signed-in user. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "created_at": "2026-12-01T09:30:00.000Z",
                     *       "is_admin": false,
                     *       "username": "alice"
                     *     }
                     */
                    "application/json": components["schemas"]["Me"];
                };
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    getMessages: {
        parameters: {
            query?: {
                /**
                 * @description Only entries with a larger id: the page starts right after it (page forwards with the
                 *     largest id of the previous page).
                 */
                after?: number;
                /**
                 * @description Only entries with a smaller id: the page ends right before it (page backwards with the
                 *     smallest id of the previous page).
                 */
                before?: number;
                /** @description How many entries a page holds at most (at most `limits.max_page_size`, 100 by default). */
                limit?: number;
            };
            header?: never;
            path: {
                /** @description The other person's username (case-insensitive). */
                username: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of the conversation, ascending by id. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "has_more": true,
                     *       "messages": [
                     *         {
                     *           "body": "Lunch at noon?",
                     *           "client_id": "c-7f3a2b",
                     *           "conversation_id": 7,
                     *           "created_at": "2026-12-01T11:58:03.512Z",
                     *           "event": null,
                     *           "from": "alice",
                     *           "id": 42,
                     *           "kind": "text",
                     *           "to": "bob"
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": components["schemas"]["HistoryDto"];
                };
            };
            /** @description Bad Request: `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `cannot_message_self`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `user_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    sendMessage: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The other person's username (case-insensitive). */
                username: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "body": "Lunch at noon?",
                 *       "client_id": "c-7f3a2b"
                 *     }
                 */
                "application/json": components["schemas"]["NewMessage"];
            };
        };
        responses: {
            /** @description A resend of a `client_id` already stored: the stored message, delivered to no one again. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "body": "Lunch at noon?",
                     *       "client_id": "c-7f3a2b",
                     *       "conversation_id": 7,
                     *       "created_at": "2026-12-01T11:58:03.512Z",
                     *       "event": null,
                     *       "from": "alice",
                     *       "id": 42,
                     *       "kind": "text",
                     *       "to": "bob"
                     *     }
                     */
                    "application/json": components["schemas"]["MessageDto"];
                };
            };
            /** @description Stored, acknowledged and delivered. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "body": "Lunch at noon?",
                     *       "client_id": "c-7f3a2b",
                     *       "conversation_id": 7,
                     *       "created_at": "2026-12-01T11:58:03.512Z",
                     *       "event": null,
                     *       "from": "alice",
                     *       "id": 42,
                     *       "kind": "text",
                     *       "to": "bob"
                     *     }
                     */
                    "application/json": components["schemas"]["MessageDto"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_parameter`, `empty_message`, `message_too_long`, `invalid_client_id`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `cannot_message_self`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `user_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            /** @description Conflict: `client_id_conflict`. */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    markRead: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The other person's username (case-insensitive). */
                username: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "up_to": 42
                 *     }
                 */
                "application/json": components["schemas"]["ReadMarker"];
            };
        };
        responses: {
            /** @description The read marker as stored. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "peer": "bob",
                     *       "up_to": 42
                     *     }
                     */
                    "application/json": components["schemas"]["ReadState"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description Forbidden: `cannot_message_self`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Not Found: `user_not_found`. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    listReadMarkers: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Both read markers of each direct conversation. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example [
                     *       {
                     *         "peer_read_up_to": 40,
                     *         "read_up_to": 42,
                     *         "username": "bob"
                     *       }
                     *     ]
                     */
                    "application/json": components["schemas"]["ReadMarkers"][];
                };
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    ready: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The database answers; `bus` tells how the cluster's bus is. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "bus": "connected",
                     *       "database": "ok",
                     *       "status": "ok"
                     *     }
                     */
                    "application/json": components["schemas"]["Readiness"];
                };
            };
            503: components["responses"]["Unavailable"];
        };
    };
    listRooms: {
        parameters: {
            query?: {
                /** @description How many rooms to return at most. */
                limit?: number;
                /** @description Part of a name or topic; case-insensitive. */
                q?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The public rooms found. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example [
                     *       {
                     *         "id": 12,
                     *         "joined": true,
                     *         "member_count": 3,
                     *         "name": "general",
                     *         "topic": "Anything goes"
                     *       }
                     *     ]
                     */
                    "application/json": components["schemas"]["RoomDto"][];
                };
            };
            /** @description Bad Request: `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    signin: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "password": "correct horse battery",
                 *       "username": "alice"
                 *     }
                 */
                "application/json": components["schemas"]["Credentials"];
            };
        };
        responses: {
            /** @description Signed in: the token and how long it lasts. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
                     *       "expires_in": 86400,
                     *       "token_type": "Bearer",
                     *       "username": "alice"
                     *     }
                     */
                    "application/json": components["schemas"]["Token"];
                };
            };
            /** @description Bad Request: `invalid_body`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Unauthorized: `invalid_credentials`. */
            401: {
                headers: {
                    /** @description `Bearer realm="chatd"`: send a token from `signin` (RFC 6750). */
                    "WWW-Authenticate": string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description Forbidden: `account_disabled`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["UnavailableOrBusy"];
        };
    };
    signout: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description This token no longer works; the user's other sessions are untouched. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
    signup: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "password": "correct horse battery",
                 *       "username": "alice"
                 *     }
                 */
                "application/json": components["schemas"]["Credentials"];
            };
        };
        responses: {
            /** @description The account was created. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "username": "alice"
                     *     }
                     */
                    "application/json": components["schemas"]["SignedUp"];
                };
            };
            /** @description Bad Request: `invalid_body`, `invalid_username`, `invalid_password`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            408: components["responses"]["RequestTimeout"];
            /** @description Conflict: `username_taken`. */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["UnavailableOrBusy"];
        };
    };
    searchUsers: {
        parameters: {
            query?: {
                /** @description How many to return at most. */
                limit?: number;
                /** @description Part of a username; case-insensitive. */
                q?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The people found, best matches first. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example [
                     *       {
                     *         "online": true,
                     *         "username": "bob"
                     *       }
                     *     ]
                     */
                    "application/json": components["schemas"]["UserDto"][];
                };
            };
            /** @description Bad Request: `invalid_parameter`. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            401: components["responses"]["Unauthorized"];
            500: components["responses"]["InternalError"];
            503: components["responses"]["Unavailable"];
        };
    };
}
