// A chat flow through openapi-fetch, typed by openapi-typescript from chatd's OpenAPI document,
// against a running server. tsc --strict checks every call and every field read here against the
// document, and the run checks the document against what the server answers.
//
//   CHATD_URL=http://127.0.0.1:3000 node build/flow.js
import assert from "node:assert/strict";
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./generated/chatd.js";

type Schemas = components["schemas"];
type Message = Schemas["MessageDto"];
type ErrorCode = Schemas["ErrorCode"];
type Api = Client<paths>;

// A prefix of its own, so that the Python flow can share the server.
const PREFIX = "ts_";
const PASSWORD = "contract-password";
const PAGE = 3;
const baseUrl = process.env.CHATD_URL ?? "";
let checks = 0;

// What every openapi-fetch call resolves to: the parsed body as `data` (2xx) or `error` (else).
interface Result<D, E> {
  data?: D;
  error?: E;
  response: Response;
}

/** The call answered `status` with a body; returns it, typed as the document says. */
function ok<D, E>(result: Result<D, E>, status: number): D {
  assert.equal(result.response.status, status, `expected ${status}: ${JSON.stringify(result.error)}`);
  assert.ok(result.data !== undefined, "a success carries a body");
  checks += 1;
  return result.data;
}

/** The call failed with `status` and this error code, in the documented error body. */
function fails<D, E extends { code: ErrorCode; message: string }>(result: Result<D, E>, status: number, code: ErrorCode): void {
  assert.equal(result.response.status, status, `expected ${status}, got a ${result.response.status}`);
  assert.equal(result.data, undefined);
  assert.ok(result.error !== undefined, "an error carries a body");
  assert.equal(result.error.code, code, result.error.message);
  assert.ok(result.error.message.length > 0, "an error carries a message for people");
  checks += 1;
}

function client(token?: string): Api {
  return createClient<paths>({ baseUrl, headers: token === undefined ? {} : { Authorization: `Bearer ${token}` } });
}

/** The whole timeline, PAGE at a time, from the newest with `before` or from the start with `after`. */
async function pageAll(api: Api, id: number, backwards: boolean): Promise<Message[]> {
  let timeline: Message[] = [];
  let cursor: number | undefined;
  for (;;) {
    const query = backwards
      ? { limit: PAGE, ...(cursor === undefined ? {} : { before: cursor }) }
      : { limit: PAGE, after: cursor ?? 0 };
    const page = ok(await api.GET("/api/conversations/{id}/messages", { params: { path: { id }, query } }), 200);
    const ids = page.messages.map((m) => m.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "a page is ascending by id");
    assert.ok(ids.length <= PAGE, `a page holds at most limit=${PAGE}: ${ids}`);
    if (page.has_more) assert.equal(ids.length, PAGE, `a page before the last is full: ${ids}`);
    if (backwards) {
      timeline = [...page.messages, ...timeline];
      cursor = ids[0];
    } else {
      timeline = [...timeline, ...page.messages];
      cursor = ids.at(-1) ?? cursor;
    }
    if (!page.has_more) return timeline;
  }
}

async function main(): Promise<void> {
  assert.ok(baseUrl, "CHATD_URL names the server");
  const anonymous = client();
  const [alice, bob, carol] = ["alice", "bob", "carol"].map((name) => PREFIX + name) as [string, string, string];

  for (const username of [alice, bob, carol]) {
    const created = ok(await anonymous.POST("/api/signup", { body: { username, password: PASSWORD } }), 201);
    assert.equal(created.username, username);
  }
  fails(await anonymous.POST("/api/signup", { body: { username: bob, password: PASSWORD } }), 409, "username_taken");

  const signIn = async (username: string): Promise<Api> => {
    const token = ok(await anonymous.POST("/api/signin", { body: { username, password: PASSWORD } }), 200);
    assert.equal(token.token_type, "Bearer");
    assert.equal(token.username, username);
    assert.ok(token.expires_in > 0);
    return client(token.access_token);
  };
  const asAlice = await signIn(alice);
  const asBob = await signIn(bob);
  assert.equal(ok(await asAlice.GET("/api/me"), 200).username, alice);

  const found = ok(await asAlice.GET("/api/users", { params: { query: { q: `${PREFIX}b` } } }), 200);
  assert.deepEqual(found.map((u) => u.username), [bob]);

  const room = ok(
    await asAlice.POST("/api/conversations", {
      body: { kind: "room", name: "ts-contract", topic: "flows", members: [bob, carol] },
    }),
    201,
  );
  assert.equal(room.kind, "room");
  assert.equal(room.my_role, "owner");
  assert.equal(room.member_count, 3);
  const seenByBob = ok(await asBob.GET("/api/conversations/{id}", { params: { path: { id: room.id } } }), 200);
  assert.equal(seenByBob.my_role, "member");

  const post = (api: Api, body: string, client_id: string) =>
    api.POST("/api/conversations/{id}/messages", { params: { path: { id: room.id } }, body: { body, client_id } });
  // A resend with the same client_id is the same message: 201, then 200 with the stored one.
  const first = ok(await post(asAlice, "hello", "ts-1"), 201);
  const again = ok(await post(asAlice, "hello", "ts-1"), 200);
  assert.deepEqual([again.id, again.body, again.client_id], [first.id, "hello", "ts-1"]);
  assert.equal(first.from, alice);
  assert.equal(first.conversation_id, room.id);
  assert.equal(first.kind, "text");

  const sent = [first.id];
  for (let n = 2; n <= 8; n++) {
    sent.push(ok(await post(n % 2 ? asAlice : asBob, `message ${n}`, `ts-${n}`), 201).id);
  }
  assert.deepEqual(sent, [...sent].sort((a, b) => a - b), "ids rise in commit order");

  const everything = ok(
    await asBob.GET("/api/conversations/{id}/messages", { params: { path: { id: room.id }, query: { limit: 100 } } }),
    200,
  );
  assert.equal(everything.has_more, false);
  const allIds = everything.messages.map((m) => m.id);
  assert.deepEqual(everything.messages.filter((m) => m.kind === "text").map((m) => m.id), sent);
  assert.deepEqual((await pageAll(asBob, room.id, true)).map((m) => m.id), allIds, "paging with before");
  assert.deepEqual((await pageAll(asBob, room.id, false)).map((m) => m.id), allIds, "paging with after");
  assert.ok(allIds.length > PAGE * 2, "enough entries for three pages");

  const lastId = sent[sent.length - 1] ?? 0;
  const marker = ok(
    await asBob.POST("/api/conversations/{id}/read", { params: { path: { id: room.id } }, body: { up_to: lastId } }),
    200,
  );
  assert.deepEqual([marker.conversation_id, marker.up_to], [room.id, lastId]);
  assert.equal(ok(await asBob.GET("/api/conversations/{id}", { params: { path: { id: room.id } } }), 200).unread, 0);

  // Read markers are listed for direct conversations.
  const direct = ok(
    await asAlice.POST("/api/messages/{username}", {
      params: { path: { username: bob } },
      body: { body: "psst", client_id: "ts-direct" },
    }),
    201,
  );
  assert.equal(direct.to, bob);
  const peerHistory = ok(await asBob.GET("/api/messages/{username}", { params: { path: { username: alice } } }), 200);
  assert.deepEqual(peerHistory.messages.map((m) => m.id), [direct.id]);
  const read = ok(
    await asBob.POST("/api/messages/{username}/read", { params: { path: { username: alice } }, body: { up_to: direct.id } }),
    200,
  );
  assert.deepEqual([read.peer, read.up_to], [alice, direct.id]);
  const bobs = ok(await asBob.GET("/api/read_markers"), 200);
  assert.deepEqual(bobs.map((m) => [m.username, m.read_up_to]), [[alice, direct.id]]);
  const alices = ok(await asAlice.GET("/api/read_markers"), 200);
  assert.deepEqual(alices.map((m) => [m.username, m.peer_read_up_to]), [[bob, direct.id]]);

  fails(
    await asAlice.GET("/api/messages/{username}", { params: { path: { username: `${PREFIX}nobody` } } }),
    404,
    "user_not_found",
  );
  fails(await asAlice.GET("/api/conversations/{id}", { params: { path: { id: 2 ** 40 } } }), 404, "conversation_not_found");
  fails(await client("not-a-token").GET("/api/me"), 401, "unauthorized");

  console.log(`typescript flow: ${checks} responses as the document types them`);
}

main().catch((failure: unknown) => {
  console.error("typescript flow FAILED:", failure);
  process.exitCode = 1;
});
