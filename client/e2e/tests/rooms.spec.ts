// Rooms and groups against the real chatd: several people in their own browser contexts create,
// join, manage and leave conversations, and see each other's changes live and after a reconnect.
import {
  expect,
  test,
  type APIRequestContext,
  type BrowserContext,
  type Locator,
  type Page,
} from '@playwright/test';
import { DESKTOP, PASSWORD, PHONE, bodies, send, shot, shotBoth, signUp, suffix } from './support';

const ANN = `ann_${suffix}`;
const BEN = `ben_${suffix}`;
const CAT = `cat_${suffix}`;
const DAN = `dan_${suffix}`;
const PLANS = `plans-${suffix}`;
const LOBBY = `lobby-${suffix}`;

test.describe.configure({ mode: 'serial' });

let annContext: BrowserContext;
let benContext: BrowserContext;
let catContext: BrowserContext;
let ann: Page;
let ben: Page;
let cat: Page;
/** The private room's id, once created. */
let plansId = 0;

function row(page: Page, title: string): Locator {
  return page.locator(`[data-testid="conversation"][data-title="${title}"]`);
}

function events(page: Page): Locator {
  return page.getByTestId('message-log').getByTestId('event-text');
}

function member(page: Page, username: string): Locator {
  return page.locator(`[data-testid="member"][data-username="${username}"]`);
}

async function openRow(page: Page, title: string): Promise<void> {
  await row(page, title).click();
  await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
}

async function openDetails(page: Page): Promise<void> {
  const toggle = page.getByTestId('members-toggle');
  if ((await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
  await expect(page.getByTestId('members-panel')).toBeVisible();
}

async function closeDetails(page: Page): Promise<void> {
  const toggle = page.getByTestId('members-toggle');
  if ((await toggle.getAttribute('aria-expanded')) === 'true') await toggle.click();
  await expect(page.getByTestId('members-panel')).toHaveCount(0);
}

async function addMember(page: Page, username: string): Promise<void> {
  await page.getByTestId('add-people').click();
  await page.getByTestId('add-member-input').fill(username);
  await page.getByTestId('add-member-result').filter({ hasText: username }).click();
  await expect(member(page, username)).toBeVisible();
}

async function tokenOf(page: Page): Promise<string> {
  return page.evaluate(
    () => JSON.parse(localStorage.getItem('chatd.session') ?? 'null')?.token as string,
  );
}

async function signUpByApi(request: APIRequestContext, username: string): Promise<string> {
  const created = await request.post('/api/signup', { data: { username, password: PASSWORD } });
  expect(created.status()).toBe(201);
  const signin = await request.post('/api/signin', { data: { username, password: PASSWORD } });
  return (await signin.json()).access_token as string;
}

test.beforeAll(async ({ browser }) => {
  annContext = await browser.newContext({ viewport: DESKTOP });
  benContext = await browser.newContext({ viewport: DESKTOP });
  catContext = await browser.newContext({ viewport: PHONE, hasTouch: true, isMobile: true });
  ann = await annContext.newPage();
  ben = await benContext.newPage();
  cat = await catContext.newPage();
  await signUp(ann, ANN);
  await signUp(ben, BEN);
  await signUp(cat, CAT);
});

test.afterAll(async () => {
  for (const context of [annContext, benContext, catContext]) await context?.close();
});

test('a private room: created, people added live, one removed mid-conversation stops receiving and cannot read on', async ({
  request,
}) => {
  await ann.getByTestId('new-conversation').click();
  const dialog = ann.getByRole('dialog', { name: 'New conversation' });
  await expect(dialog).toBeVisible();
  await dialog.getByRole('tab', { name: 'Room' }).click();
  await dialog.getByLabel('Name').fill(PLANS);
  await dialog.getByLabel('Topic (optional)').fill('What we ship next');
  await dialog.getByText('only people added to it can see it').click();
  await shotBoth(ann, 'new-room');
  await dialog.getByRole('button', { name: 'Create room' }).click();
  await expect(dialog).toBeHidden();
  await expect(ann.getByRole('heading', { level: 1, name: PLANS })).toBeVisible();
  await expect(ann).toHaveURL(/\/conversations\/\d+$/);
  plansId = Number(/\/conversations\/(\d+)$/.exec(ann.url())![1]);
  await expect(ann.getByTestId('room-topic')).toHaveText('What we ship next');
  await expect(events(ann)).toHaveText([`You created the room ${PLANS}`]);
  await expect(ann.getByTestId('composer')).toBeFocused();

  // Adding people from the members panel: each of them sees the room appear, live.
  await openDetails(ann);
  await expect(member(ann, ANN).getByTestId('member-role')).toHaveText('Owner');
  await addMember(ann, BEN);
  await addMember(ann, CAT);
  await expect(ann.getByTestId('panel-member-count')).toHaveText('(3)');
  await expect(ann.getByTestId('header-member-count')).toHaveText('3 members');
  await shotBoth(ann, 'room-members');
  await closeDetails(ann);

  for (const page of [ben, cat]) {
    await expect(row(page, PLANS)).toBeVisible();
    await expect(row(page, PLANS).getByTestId('member-count')).toHaveText('3 members');
  }
  await openRow(ben, PLANS);
  await expect(events(ben)).toContainText([`${ANN} added you`]);
  await openRow(cat, PLANS);

  // Names and avatars head each run of messages from someone else.
  await send(ann, 'hello team');
  await send(ann, 'two things today');
  await expect(bodies(ben)).toHaveText(['hello team', 'two things today']);
  await expect(bodies(cat)).toHaveText(['hello team', 'two things today']);
  await expect(ben.getByTestId('sender')).toHaveText([ANN]);
  await send(ben, 'ready when you are');
  await expect(bodies(ann).last()).toHaveText('ready when you are');
  await expect(ann.getByTestId('sender')).toHaveText([BEN]);
  await shotBoth(ben, 'room');
  await shot(cat, 'room-phone-member');

  // Ann removes Cat: Cat's screen says so, the room leaves her list, and nothing more reaches her.
  await openDetails(ann);
  await member(ann, CAT).getByTestId('manage-member').click();
  await member(ann, CAT).getByTestId('remove-member').click();
  await member(ann, CAT).getByTestId('confirm').click();
  await expect(member(ann, CAT)).toHaveCount(0);
  await closeDetails(ann);
  await expect(cat.getByTestId('gone')).toContainText(`${ANN} removed you from ${PLANS}`);
  await expect(cat.getByTestId('composer')).toHaveCount(0);
  await expect(cat.getByTestId('message-log')).toHaveCount(0);
  await shot(cat, 'room-removed-phone');
  await expect(events(ben).last()).toHaveText(`${ANN} removed ${CAT}`);

  await send(ann, 'now just the two of us');
  await expect(bodies(ben).last()).toHaveText('now just the two of us');
  await cat.getByRole('link', { name: 'Back to conversations' }).click();
  await expect(row(cat, PLANS)).toHaveCount(0);
  await cat.waitForTimeout(500);
  await expect(cat.getByText('now just the two of us')).toHaveCount(0);

  // Not after a reload either, not by its address, not through the API.
  await cat.goto(`/conversations/${plansId}`);
  await expect(cat.getByTestId('not-found')).toContainText('This conversation doesn’t exist.');
  await expect(row(cat, PLANS)).toHaveCount(0);
  const history = await request.get(`/api/conversations/${plansId}/messages`, {
    headers: { Authorization: `Bearer ${await tokenOf(cat)}` },
  });
  expect(history.status()).toBe(404);
});

test('a group made from the new-conversation picker shows who has seen the last message', async () => {
  await ben.getByTestId('new-conversation').click();
  const dialog = ben.getByRole('dialog', { name: 'New conversation' });
  const picker = dialog.getByLabel('Add people');
  await expect(picker).toBeFocused();
  await picker.fill(ANN);
  await expect(dialog.getByTestId('pick-result').filter({ hasText: ANN })).toBeVisible();
  await picker.press('Enter');
  await picker.fill(CAT);
  await dialog.getByTestId('pick-result').filter({ hasText: CAT }).click();
  await expect(dialog.getByTestId('picked')).toHaveCount(2);
  await expect(dialog.getByRole('button', { name: 'Start group of 3' })).toBeEnabled();
  await shotBoth(ben, 'new-group');
  await dialog.getByRole('button', { name: 'Start group of 3' }).click();
  const title = `${ANN} and ${CAT}`;
  await expect(ben.getByRole('heading', { level: 1, name: title })).toBeVisible();
  await expect(ben.getByTestId('header-member-count')).toHaveText('3 members');

  await send(ben, 'lunch at noon?');
  await expect(ben.getByTestId('delivery')).toHaveText('· Sent');
  const annTitle = `${BEN} and ${CAT}`;
  await expect(row(ann, annTitle)).toBeVisible();
  await expect(row(ann, annTitle).getByTestId('unread-badge')).toHaveText('1');
  await openRow(ann, annTitle);
  await expect(bodies(ann)).toHaveText(['lunch at noon?']);
  await expect(ben.getByTestId('delivery')).toHaveText('· Seen by 1');

  await cat.goto('/');
  await openRow(cat, `${ANN} and ${BEN}`);
  await expect(ben.getByTestId('delivery')).toHaveText('· Seen by 2');
  await expect(ben.getByTestId('delivery')).toHaveAttribute('title', `Seen by ${ANN} and ${CAT}`);
  await shotBoth(ben, 'group');
});

test('a public room is found in the directory and joined', async () => {
  const token = await tokenOf(ann);
  const created = await ann.request.post('/api/conversations', {
    headers: { Authorization: `Bearer ${token}` },
    data: { kind: 'room', name: LOBBY, topic: 'Say hi to everyone', visibility: 'public' },
  });
  expect(created.status()).toBe(201);
  await expect(row(ann, LOBBY)).toBeVisible();

  await cat.goto('/');
  await cat.getByTestId('browse-rooms').click();
  await expect(cat).toHaveURL(/\/rooms$/);
  await cat.getByLabel('Search rooms').fill(`lobby-${suffix}`);
  const entry = cat.locator(`[data-testid="directory-room"][data-name="${LOBBY}"]`);
  await expect(entry).toBeVisible();
  await expect(cat.getByTestId('directory-room')).toHaveCount(1);
  await expect(entry).toContainText('Say hi to everyone');
  await expect(entry.getByTestId('directory-member-count')).toHaveText('1 member');
  // The private room never shows in the directory.
  await cat.getByLabel('Search rooms').fill(PLANS);
  await expect(cat.getByText(`No public room matches “${PLANS}”.`)).toBeVisible();
  await cat.getByLabel('Search rooms').fill('');
  await expect(entry).toBeVisible();
  await shotBoth(cat, 'browse-rooms');

  await entry.getByRole('button', { name: `Join ${LOBBY}` }).click();
  await expect(cat.getByRole('heading', { level: 1, name: LOBBY })).toBeVisible();
  await expect(cat.getByTestId('header-member-count')).toHaveText('2 members');
  await expect(events(cat).last()).toHaveText('You joined');
  await send(cat, 'hi all');
  await openRow(ann, LOBBY);
  await expect(events(ann).last()).toHaveText(`${CAT} joined`);
  await expect(bodies(ann)).toHaveText(['hi all']);

  await cat.getByRole('link', { name: 'Back to conversations' }).click();
  await cat.getByTestId('browse-rooms').click();
  await expect(entry.getByTestId('joined')).toHaveText('Joined');
  await expect(entry.getByTestId('directory-member-count')).toHaveText('2 members');
});

test('back from offline, a rename and a new member are caught up, each once', async ({
  request,
}) => {
  const danToken = await signUpByApi(request, DAN);
  expect(danToken).toBeTruthy();
  await ben.goto(`/conversations/${plansId}`);
  await expect(ben.getByRole('heading', { level: 1, name: PLANS })).toBeVisible();
  await expect(ben.getByTestId('header-member-count')).toHaveText('2 members');

  await benContext.setOffline(true);
  await expect(ben.getByTestId('connection-banner')).toBeVisible();

  await ann.goto(`/conversations/${plansId}`);
  await openDetails(ann);
  await ann.getByTestId('rename').click();
  await ann.getByTestId('name-input').fill(`${PLANS} (Q3)`);
  await ann.getByRole('button', { name: 'Save' }).click();
  await expect(ann.getByRole('heading', { level: 1, name: `${PLANS} (Q3)` })).toBeVisible();
  await addMember(ann, DAN);
  await closeDetails(ann);
  await expect(ann.getByTestId('header-member-count')).toHaveText('3 members');

  await benContext.setOffline(false);
  await expect(ben.getByTestId('connection-banner')).toBeHidden({ timeout: 20_000 });
  await expect(ben.getByRole('heading', { level: 1, name: `${PLANS} (Q3)` })).toBeVisible();
  await expect(ben.getByTestId('header-member-count')).toHaveText('3 members');
  await expect(row(ben, `${PLANS} (Q3)`)).toBeVisible();
  await expect(row(ben, PLANS)).toHaveCount(0);
  const renamed = `${ANN} renamed the conversation to “${PLANS} (Q3)”`;
  await expect(events(ben).filter({ hasText: renamed })).toHaveCount(1);
  await expect(events(ben).filter({ hasText: `${ANN} added ${DAN}` })).toHaveCount(1);
  await ben.waitForTimeout(1000);
  await expect(events(ben).filter({ hasText: renamed })).toHaveCount(1);
  await openDetails(ben);
  await expect(member(ben, DAN)).toBeVisible();
  await closeDetails(ben);
});

test('roles: an owner makes an admin; an archived room is read-only until an admin unarchives it', async () => {
  await openDetails(ann);
  await member(ann, BEN).getByTestId('manage-member').click();
  await member(ann, BEN).getByTestId('make-admin').click();
  await expect(member(ann, BEN).getByTestId('member-role')).toHaveText('Admin');
  await expect(events(ben).last()).toHaveText(`${ANN} made you an admin`);

  // Now an admin, Ben may rename and archive, but not delete the room or change roles.
  await openDetails(ben);
  await expect(ben.getByTestId('rename')).toBeVisible();
  await expect(ben.getByTestId('archive')).toBeVisible();
  await expect(ben.getByTestId('delete-room')).toHaveCount(0);
  await expect(member(ben, DAN).getByTestId('manage-member')).toBeVisible();
  await member(ben, DAN).getByTestId('manage-member').click();
  await expect(member(ben, DAN).getByTestId('make-admin')).toHaveCount(0);
  await expect(member(ben, DAN).getByTestId('remove-member')).toBeVisible();
  await expect(member(ben, ANN).getByTestId('manage-member')).toHaveCount(0);
  await closeDetails(ben);

  await ann.getByTestId('archive').click();
  await expect(ann.getByTestId('archive')).toHaveText('Unarchive room');
  await closeDetails(ann);
  await expect(ben.getByTestId('read-only')).toContainText('archived');
  await expect(ben.getByTestId('composer')).toHaveCount(0);
  await expect(events(ben).last()).toHaveText(`${ANN} archived the room`);
  await shotBoth(ben, 'room-archived');
  await ben.getByTestId('read-only').getByRole('button', { name: 'Unarchive' }).click();
  await expect(ben.getByTestId('composer')).toBeVisible();
  await expect(ann.getByTestId('composer')).toBeVisible();
  await expect(events(ann).last()).toHaveText(`${BEN} unarchived the room`);
});

test('the room screens in dark mode, and the details panel on a phone', async () => {
  await ben.emulateMedia({ colorScheme: 'dark' });
  await shotBoth(ben, 'room-dark');
  await ben.emulateMedia({ colorScheme: 'light' });

  await cat.goto('/');
  await expect(row(cat, LOBBY)).toBeVisible();
  await shot(cat, 'conversation-list-rooms-phone');
  await row(cat, LOBBY).click();
  await openDetails(cat);
  await shot(cat, 'room-details-phone');
  await cat.keyboard.press('Escape');
  await expect(cat.getByTestId('members-panel')).toHaveCount(0);
  await expect(cat.getByTestId('members-toggle')).toBeFocused();
  // Cat is a member of a public room: she may add people but not rename it.
  await openDetails(cat);
  await expect(cat.getByTestId('add-people')).toBeVisible();
  await expect(cat.getByTestId('rename')).toHaveCount(0);
  await cat.getByTestId('leave').click();
  await cat.getByTestId('confirm').click();
  await expect(cat.getByTestId('not-member')).toContainText('You left this room.');
  await expect(cat.getByTestId('join')).toBeVisible();
  await cat.getByRole('link', { name: 'Back to conversations' }).click();
  await expect(row(cat, LOBBY).getByTestId('preview')).toHaveText('You left this room');
});

test('a direct conversation by id opens under the person’s name; the dialog and the switcher know rooms', async ({
  request,
}) => {
  const sent = await request.post(`/api/messages/${BEN}`, {
    headers: { Authorization: `Bearer ${await tokenOf(ann)}` },
    data: { body: 'a word in private', client_id: 'dm-by-id' },
  });
  expect(sent.status()).toBe(201);
  const id = (await sent.json()).conversation_id as number;
  await ben.goto(`/conversations/${id}`);
  await expect(ben).toHaveURL(new RegExp(`/c/${ANN}$`));
  await expect(ben.getByRole('heading', { level: 1, name: ANN })).toBeVisible();
  await expect(bodies(ben)).toHaveText(['a word in private']);
  const direct = ben.getByTestId('direct-section').getByTestId('conversation');
  await expect(direct).toHaveCount(1);
  await expect(direct.getByTestId('presence')).toHaveText('Online');
  await expect(ben.getByTestId('rooms-section').getByTestId('conversation')).toHaveCount(2);

  // The new-conversation dialog is modal: Esc closes it and focus goes back where it was.
  await ben.getByTestId('new-conversation').click();
  const dialog = ben.getByRole('dialog', { name: 'New conversation' });
  await expect(dialog).toBeVisible();
  await ben.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(ben.getByTestId('new-conversation')).toBeFocused();

  // Ctrl+K reaches rooms and groups as well as people.
  await ben.keyboard.press('Control+k');
  const switcher = ben.getByRole('dialog', { name: 'Jump to a conversation' });
  await expect(switcher.getByRole('option')).toHaveCount(3);
  await ben.keyboard.type('plans');
  await expect(switcher.getByRole('option')).toHaveCount(1);
  await ben.keyboard.press('Enter');
  await expect(ben.getByRole('heading', { level: 1, name: `${PLANS} (Q3)` })).toBeVisible();
  await expect(ben).toHaveURL(new RegExp(`/conversations/${plansId}$`));
});
