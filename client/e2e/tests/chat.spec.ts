// Two people, two browser contexts, the real chatd: the flows issue 3 promises, end to end.
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import {
  DESKTOP,
  PASSWORD,
  PHONE,
  bodies,
  conversationRow,
  documentIsMarked,
  markDocument,
  openConversation,
  send,
  shot,
  shotBoth,
  signIn,
  signUp,
  suffix,
} from './support';

const ALICE = `alice_${suffix}`;
const BOB = `bob_${suffix}`;

test.describe.configure({ mode: 'serial' });

let aliceContext: BrowserContext;
let bobContext: BrowserContext;
let alice: Page;
let bob: Page;

test.beforeAll(async ({ browser }) => {
  aliceContext = await browser.newContext({ viewport: DESKTOP });
  bobContext = await browser.newContext({ viewport: PHONE, hasTouch: true, isMobile: true });
  alice = await aliceContext.newPage();
  bob = await bobContext.newPage();
});

test.afterAll(async () => {
  await aliceContext?.close();
  await bobContext?.close();
});

test('sign-up validates inline, and two people sign up', async () => {
  await alice.goto('/');
  await expect(alice).toHaveURL(/\/signin$/);
  await expect(alice).toHaveTitle('chatd');
  await shotBoth(alice, 'signin');

  await alice.goto('/signup');
  await alice.getByLabel('Username').fill('no spaces');
  await alice.getByLabel('Password', { exact: true }).fill('short');
  await alice.getByRole('button', { name: 'Create account' }).click();
  await expect(alice.locator('#username-error')).toContainText('letters, digits');
  await shotBoth(alice, 'signup-errors');
  // Every broken rule at once, naming the character that is not allowed.
  await alice.getByLabel('Username').fill('A!');
  await alice.getByRole('button', { name: 'Create account' }).click();
  await expect(alice.locator('#username-error')).toHaveText(
    'At least 3 characters. Use only letters, digits, “_”, “.” and “-” (not “!”).',
  );

  await signUp(alice, ALICE);
  await expect(alice.getByText('No conversations yet.')).toBeVisible();
  // Signed in, the first thing to do is find someone: the search box has focus.
  await expect(alice.getByLabel('Search people')).toBeFocused();
  await shotBoth(alice, 'empty');
  await signUp(bob, BOB);

  // A taken name is reported by the server next to the username field.
  const stranger = await bobContext.browser()!.newContext();
  const page = await stranger.newPage();
  await page.goto('/signup');
  await page.getByLabel('Username').fill(ALICE.toUpperCase());
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.locator('#username-error')).toHaveText('That username is taken. Try another.');
  await stranger.close();
});

test('A finds B and sends; B sees it live with A’s presence', async () => {
  await alice.getByLabel('Search people').fill(BOB.slice(0, 6));
  const result = alice.getByTestId('search-result').filter({ hasText: BOB });
  // Bob has not written to Alice: his presence is his to share, so search does not show it.
  await expect(result).toBeVisible();
  await expect(result).not.toContainText('Online');
  await shotBoth(alice, 'search');
  await result.click();
  await expect(alice.getByRole('heading', { level: 1, name: BOB })).toBeVisible();
  await expect(alice.getByTestId('message-log')).toContainText(`Say hello to ${BOB}`);
  await shotBoth(alice, 'new-conversation');

  await send(alice, 'Hi Bob! 👋');
  const sent = alice.getByTestId('message').filter({ hasText: 'Hi Bob!' });
  await expect(sent).toHaveAttribute('data-state', 'sent');
  await expect(sent).toHaveAttribute('data-id', /^\d+$/);

  const row = conversationRow(bob, ALICE);
  await expect(row).toBeVisible();
  await expect(row.getByTestId('preview')).toHaveText('Hi Bob! 👋');
  await expect(row.getByTestId('presence')).toHaveText('Online');
  await expect(row.getByTestId('unread-badge')).toHaveText('1');
  await shotBoth(bob, 'conversation-list');

  await openConversation(bob, ALICE);
  await expect(bodies(bob)).toHaveText(['Hi Bob! 👋']);
  await expect(bob.getByTestId('peer-status')).toHaveText('Online');
});

test('B types and replies; A sees typing, the reply and a read receipt', async () => {
  await bob.getByTestId('composer').pressSequentially('Hello Al', { delay: 20 });
  await expect(alice.getByTestId('typing-indicator')).toHaveText(`${BOB} is typing…`);
  // Once is enough: the header keeps showing presence, the open row in the list its preview.
  await expect(alice.getByText('typing…')).toHaveCount(1);
  await expect(conversationRow(alice, BOB).getByTestId('preview')).toBeVisible();
  await bob.getByTestId('composer').pressSequentially('ice', { delay: 20 });
  await bob.getByTestId('composer').press('Enter');

  await expect(bodies(alice)).toHaveText(['Hi Bob! 👋', 'Hello Alice']);
  // Bob's first reply shares his presence with Alice, live.
  await expect(alice.getByTestId('peer-status')).toHaveText('Online');
  await expect(alice.getByTestId('typing-indicator')).toHaveText('');
  await expect(bodies(bob)).toHaveText(['Hi Bob! 👋', 'Hello Alice']);
  await expect(bob.getByTestId('message').last()).toHaveAttribute('data-state', 'sent');

  // Bob had the conversation open, so Alice's message shows as seen.
  await expect(alice.getByTestId('delivery')).toContainText('Seen');

  // Shift+Enter makes a new line instead of sending.
  const composer = alice.getByTestId('composer');
  await composer.fill('line one');
  await composer.press('Shift+Enter');
  await composer.pressSequentially('line two');
  await expect(composer).toHaveValue('line one\nline two');
  await composer.press('Enter');
  await expect(bodies(bob).last()).toHaveText('line one\nline two');
  await shotBoth(alice, 'conversation');
  await shotBoth(bob, 'conversation-peer');
});

test('A reloads and the history is still there, with the "Seen" receipt', async () => {
  // Bob has the conversation open, so he has read Alice's newest message.
  const receipt = alice.getByTestId('message').last().getByTestId('delivery');
  await expect(receipt).toContainText('Seen');
  await alice.reload();
  await expect(alice.getByTestId('me')).toHaveText(ALICE);
  await expect(alice.getByRole('heading', { level: 1, name: BOB })).toBeVisible();
  await expect(bodies(alice)).toHaveText(['Hi Bob! 👋', 'Hello Alice', 'line one\nline two']);
  await expect(alice.getByRole('log')).toBeVisible();
  // The receipt comes from the server's read markers, not from a live frame.
  await expect(receipt).toContainText('Seen');
  await expect(alice.getByTestId('delivery')).toHaveCount(1);

  // The browser's back and forward buttons move between screens.
  await alice.goBack();
  await expect(alice).toHaveURL(/\/$/);
  await expect(alice.getByRole('heading', { name: 'Your messages' })).toBeVisible();
  await alice.goForward();
  await expect(alice).toHaveURL(new RegExp(`/c/${BOB}$`));
  await expect(bodies(alice)).toHaveCount(3);
});

test('B goes offline, A sends three, B comes back and gets each once, in order', async () => {
  await bobContext.setOffline(true);
  await expect(bob.getByTestId('connection-banner')).toBeVisible();
  await expect(alice.getByTestId('peer-status')).toHaveText('Offline');
  await shotBoth(bob, 'offline');

  for (const text of ['first while away', 'second while away', 'third while away']) {
    await send(alice, text);
    await expect(alice.getByTestId('message').filter({ hasText: text })).toHaveAttribute(
      'data-state',
      'sent',
    );
  }
  await expect(bodies(bob)).toHaveCount(3);

  await bobContext.setOffline(false);
  await expect(bob.getByTestId('connection-banner')).toBeHidden({ timeout: 20_000 });
  await expect(bodies(bob)).toHaveText([
    'Hi Bob! 👋',
    'Hello Alice',
    'line one\nline two',
    'first while away',
    'second while away',
    'third while away',
  ]);
  await expect(alice.getByTestId('peer-status')).toHaveText('Online');
  // Nothing arrives twice later on.
  await bob.waitForTimeout(1000);
  await expect(bodies(bob)).toHaveCount(6);
});

test('a message written offline waits, sending…, and goes by itself once the network is back', async () => {
  await aliceContext.setOffline(true);
  await expect(alice.getByTestId('connection-banner')).toContainText('chatd will reconnect');
  await send(alice, 'sent from a tunnel');
  const queued = alice.getByTestId('message').filter({ hasText: 'sent from a tunnel' });
  await expect(queued).toHaveAttribute('data-state', 'sending');
  await expect(queued.getByTestId('delivery')).toHaveText('Sending…');
  // Still waiting well past the ack timeout: unreachable is not refused.
  await alice.waitForTimeout(11_000);
  await expect(queued).toHaveAttribute('data-state', 'sending');
  await expect(queued.getByTestId('retry')).toHaveCount(0);
  await shot(alice, 'queued-send-desktop');

  await aliceContext.setOffline(false);
  await expect(alice.getByTestId('connection-banner')).toBeHidden({ timeout: 20_000 });
  await expect(queued).toHaveAttribute('data-state', 'sent');
  await expect(bodies(bob).filter({ hasText: 'sent from a tunnel' })).toHaveCount(1);
  await alice.reload();
  await expect(bodies(alice).filter({ hasText: 'sent from a tunnel' })).toHaveCount(1);
});

test('unread badge and tab title count up, and clear on read', async () => {
  await bob.getByRole('link', { name: 'Back to conversations' }).click();
  await expect(conversationRow(bob, ALICE)).toBeVisible();
  await expect(bob).toHaveTitle('chatd');

  await send(alice, 'unread one');
  await expect(conversationRow(bob, ALICE).getByTestId('unread-badge')).toHaveText('1');
  await expect(bob).toHaveTitle('(1) chatd');
  await send(alice, 'unread two');
  await expect(conversationRow(bob, ALICE).getByTestId('unread-badge')).toHaveText('2');
  await expect(bob).toHaveTitle('(2) chatd');
  await expect(conversationRow(bob, ALICE).getByTestId('preview')).toHaveText('unread two');
  await shotBoth(bob, 'unread');

  await openConversation(bob, ALICE);
  await expect(bob.getByTestId('read-marker')).toBeVisible();
  await expect(bodies(bob).last()).toHaveText('unread two');
  await expect(bob).toHaveTitle('chatd');
  await bob.getByRole('link', { name: 'Back to conversations' }).click();
  await expect(conversationRow(bob, ALICE).getByTestId('unread-badge')).toHaveCount(0);

  // The server agrees: after a reload nothing is unread.
  await bob.reload();
  await expect(conversationRow(bob, ALICE)).toBeVisible();
  await expect(conversationRow(bob, ALICE).getByTestId('unread-badge')).toHaveCount(0);
  await expect(bob).toHaveTitle('chatd');
});

test('B on two devices: reading on one clears the badge and the title on the other, live', async ({
  browser,
}) => {
  const laptopContext = await browser.newContext({ viewport: DESKTOP });
  const laptop = await laptopContext.newPage();
  try {
    await signIn(laptop, BOB);
    await expect(conversationRow(laptop, ALICE)).toBeVisible();
    await expect(conversationRow(bob, ALICE)).toBeVisible();
    await markDocument(bob);
    await markDocument(laptop);

    // Read on the laptop: the phone clears.
    await send(alice, 'read me anywhere');
    for (const page of [bob, laptop]) {
      await expect(conversationRow(page, ALICE).getByTestId('unread-badge')).toHaveText('1');
      await expect(page).toHaveTitle('(1) chatd');
    }
    await shotBoth(laptop, 'two-devices-unread');
    await openConversation(laptop, ALICE);
    await expect(bodies(laptop).last()).toHaveText('read me anywhere');
    await expect(conversationRow(bob, ALICE).getByTestId('unread-badge')).toHaveCount(0);
    await expect(bob).toHaveTitle('chatd');
    await expect(alice.getByTestId('message').last().getByTestId('delivery')).toContainText('Seen');

    // Read on the phone: the laptop, with the list on screen, clears.
    await laptop.goto('/');
    await expect(conversationRow(laptop, ALICE)).toBeVisible();
    await markDocument(laptop);
    await send(alice, 'and on the other one');
    for (const page of [bob, laptop]) {
      await expect(conversationRow(page, ALICE).getByTestId('unread-badge')).toHaveText('1');
      await expect(page).toHaveTitle('(1) chatd');
    }
    await openConversation(bob, ALICE);
    await expect(bodies(bob).last()).toHaveText('and on the other one');
    await expect(conversationRow(laptop, ALICE).getByTestId('unread-badge')).toHaveCount(0);
    await expect(laptop).toHaveTitle('chatd');

    // Neither device reloaded to get there.
    expect(await documentIsMarked(bob)).toBe(true);
    expect(await documentIsMarked(laptop)).toBe(true);
    await bob.getByRole('link', { name: 'Back to conversations' }).click();
    await expect(conversationRow(bob, ALICE)).toBeVisible();
  } finally {
    await laptopContext.close();
  }
});

test('long history: opens at the newest, loads older pages without jumping, offers jump to latest', async ({
  request,
}) => {
  const carol = `carol_${suffix}`;
  expect(
    (await request.post('/api/signup', { data: { username: carol, password: PASSWORD } })).status(),
  ).toBe(201);
  const signin = await request.post('/api/signin', {
    data: { username: carol, password: PASSWORD },
  });
  const token = (await signin.json()).access_token as string;
  const auth = { Authorization: `Bearer ${token}` };
  for (let i = 1; i <= 130; i++) {
    // The server limits senders to a steady rate: wait when told to, then resend the same id.
    for (;;) {
      const response = await request.post(`/api/messages/${ALICE}`, {
        headers: auth,
        data: { body: `history ${i}`, client_id: `seed-${i}` },
      });
      if (response.status() === 429) {
        expect((await response.json()).code).toBe('rate_limited');
        await new Promise((r) =>
          setTimeout(r, 1000 * Number(response.headers()['retry-after'] ?? 0.2) || 200),
        );
        continue;
      }
      expect(response.status()).toBe(201);
      break;
    }
  }

  // A fresh load knows only the newest message of each conversation; history comes in pages.
  await alice.goto('/');
  await expect(conversationRow(alice, carol).getByTestId('unread-badge')).toHaveText('99+');
  await expect(conversationRow(alice, carol).getByTestId('unread-badge')).toHaveAttribute(
    'aria-label',
    '130 unread messages',
  );
  await openConversation(alice, carol);
  const log = alice.getByTestId('message-log');
  await expect(bodies(alice).last()).toHaveText('history 130');
  await expect(bodies(alice).last()).toBeInViewport();
  await expect(bodies(alice)).toHaveCount(50);
  await expect(alice.getByTestId('jump-to-latest')).toHaveCount(0);

  // Scroll to the top: the previous page loads and the message that was on top stays put.
  const before = await log.evaluate((el) => {
    el.scrollTop = 0;
    const first = el.querySelector('[data-testid="message"]')!;
    return { text: first.textContent!.trim(), top: first.getBoundingClientRect().top };
  });
  expect(before.text).toContain('history 81');
  await expect(bodies(alice)).toHaveCount(100);
  const after = await alice
    .getByTestId('message')
    .filter({ hasText: /^\s*carol_\w+:\s*history 81\s*$/ })
    .evaluate((el) => el.getBoundingClientRect().top);
  expect(Math.abs(after - before.top)).toBeLessThan(4);

  await log.evaluate((el) => (el.scrollTop = 0));
  await expect(bodies(alice)).toHaveCount(130);
  await expect(bodies(alice).first()).toHaveText('history 1');
  await log.evaluate((el) => (el.scrollTop = 0));
  await expect(log).toContainText(`This is the beginning of your conversation with ${carol}.`);

  // Scrolled up, a new message does not yank the view: a button offers the way down.
  await expect(alice.getByTestId('jump-to-latest')).toBeVisible();
  const response = await request.post(`/api/messages/${ALICE}`, {
    headers: auth,
    data: { body: 'are you still there?', client_id: 'seed-late' },
  });
  expect(response.status()).toBe(201);
  await expect(alice.getByTestId('jump-to-latest')).toHaveText('1 new message');
  await expect(alice).toHaveTitle('(1) chatd');
  await expect(bodies(alice).last()).not.toBeInViewport();
  await shotBoth(alice, 'jump-to-latest', async () => {
    await log.evaluate((el) => (el.scrollTop = el.scrollHeight / 3));
  });
  await alice.getByTestId('jump-to-latest').click();
  await expect(bodies(alice).last()).toHaveText('are you still there?');
  await expect(bodies(alice).last()).toBeInViewport();
  await expect(alice.getByTestId('jump-to-latest')).toHaveCount(0);
  await expect(alice).toHaveTitle('chatd');
});

test('the main flow works from the keyboard alone', async () => {
  await alice.goto('/');
  await expect(alice.getByTestId('conversation')).toHaveCount(2);
  await alice.getByLabel('Search people').focus();
  await alice.keyboard.press('Tab');
  await expect(alice.getByTestId('online-filter')).toBeFocused();
  await alice.keyboard.press('Tab');
  const focused = alice.locator(':focus');
  await expect(focused).toHaveAttribute('data-testid', 'conversation');
  const peer = (await focused.getAttribute('data-peer'))!;
  await alice.keyboard.press('Enter');
  await expect(alice.getByRole('heading', { level: 1, name: peer })).toBeVisible();
  await expect(alice.getByTestId('composer')).toBeFocused();
  await alice.keyboard.type('typed without a mouse');
  await alice.keyboard.press('Enter');
  await expect(bodies(alice).last()).toHaveText('typed without a mouse');
  await expect(alice.getByTestId('message').last()).toHaveAttribute('data-state', 'sent');

  // Search, then Enter opens the best match.
  await alice.getByLabel('Search people').focus();
  await alice.keyboard.type(BOB);
  await expect(alice.getByTestId('search-result').first()).toContainText(BOB);
  await alice.keyboard.press('Enter');
  await expect(alice.getByRole('heading', { level: 1, name: BOB })).toBeVisible();
  await expect(alice.getByLabel('Search people')).toHaveValue('');
});

test('Ctrl+K jumps to any conversation; Esc closes the switcher, then the conversation', async () => {
  const carol = `carol_${suffix}`;
  await alice.goto(`/c/${BOB}`);
  await expect(alice.getByTestId('composer')).toBeFocused();
  await alice.keyboard.press('Control+k');
  const switcher = alice.getByRole('dialog', { name: 'Jump to a conversation' });
  await expect(switcher).toBeVisible();
  await expect(switcher.getByRole('combobox')).toBeFocused();
  await expect(switcher.getByRole('option')).toHaveCount(2);
  await shotBoth(alice, 'quick-switcher');
  await alice.keyboard.type(carol.slice(0, 4));
  await expect(switcher.getByRole('option')).toHaveCount(1);
  await expect(switcher.getByRole('option', { selected: true })).toContainText(carol);
  await alice.keyboard.press('Enter');
  await expect(switcher).toBeHidden();
  await expect(alice.getByRole('heading', { level: 1, name: carol })).toBeVisible();
  await expect(alice.getByTestId('composer')).toBeFocused();

  // Esc closes what is open: first the switcher (focus goes back), then the conversation.
  await alice.keyboard.press('Control+k');
  await expect(switcher).toBeVisible();
  await alice.keyboard.press('Escape');
  await expect(switcher).toBeHidden();
  await expect(alice.getByTestId('composer')).toBeFocused();
  await alice.keyboard.press('Escape');
  await expect(alice).toHaveURL(/\/$/);
  await expect(alice.getByLabel('Search people')).toBeFocused();
});

test('a conversation with someone who does not exist says so', async () => {
  await alice.goto('/c/doesnotexist');
  await expect(
    alice.getByRole('heading', { level: 1, name: 'No such conversation' }),
  ).toBeVisible();
  await expect(alice.getByText('There is no one called “doesnotexist”.')).toBeVisible();
  await expect(alice.getByTestId('peer-status')).toHaveCount(0);
  await expect(alice.getByTestId('composer')).toHaveCount(0);
  await expect(alice.locator('main app-avatar')).toHaveCount(0);
  await shotBoth(alice, 'no-such-conversation');
  await expect(conversationRow(alice, 'doesnotexist')).toHaveCount(0);
});

test('who of my contacts is online shows without searching', async () => {
  const carol = `carol_${suffix}`;
  await alice.goto('/');
  const filter = alice.getByTestId('online-filter');
  // bob is signed in on his phone; carol only ever used the API.
  await expect(filter).toHaveText(/Online now \(1\)/);
  await filter.click();
  await expect(filter).toHaveAttribute('aria-pressed', 'true');
  await expect(alice.getByTestId('conversation')).toHaveCount(1);
  await expect(conversationRow(alice, BOB)).toBeVisible();
  await expect(conversationRow(alice, carol)).toHaveCount(0);
  await shotBoth(alice, 'online-now');
  await filter.click();
  await expect(alice.getByTestId('conversation')).toHaveCount(2);
});

test('dark mode follows the system setting', async () => {
  await alice.emulateMedia({ colorScheme: 'dark' });
  await conversationRow(alice, BOB).click();
  const background = await alice
    .locator('html')
    .evaluate((el) => getComputedStyle(el).backgroundColor);
  expect(background).toBe('rgb(15, 17, 21)');
  await shotBoth(alice, 'conversation-dark');
  // A narrower window keeps the newest message in view (a phone's keyboard does the same).
  await alice.setViewportSize(PHONE);
  await expect(bodies(alice).last()).toBeInViewport();
  await alice.setViewportSize(DESKTOP);
  await alice.emulateMedia({ colorScheme: 'light' });

  const guest = await alice.context().browser()!.newContext({ colorScheme: 'dark' });
  const signin = await guest.newPage();
  await signin.goto('/signin');
  await expect(signin.getByRole('heading', { name: 'Sign in to chatd' })).toBeVisible();
  await shotBoth(signin, 'signin-dark');
  await guest.close();
});

test('sign-out returns to sign-in and the old session can no longer read messages', async ({
  request,
}) => {
  const token = await bob.evaluate(
    () => JSON.parse(localStorage.getItem('chatd.session') ?? 'null')?.token as string,
  );
  expect(token).toBeTruthy();
  const before = await request.get(`/api/messages/${ALICE}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  expect(before.status()).toBe(200);

  await bob.getByTestId('sign-out').click();
  await expect(bob).toHaveURL(/\/signin$/);
  await expect(bob.getByRole('heading', { name: 'Sign in to chatd' })).toBeVisible();
  expect(await bob.evaluate(() => localStorage.getItem('chatd.session'))).toBeNull();

  const after = await request.get(`/api/messages/${ALICE}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  expect(after.status()).toBe(401);
  expect((await after.json()).code).toBe('unauthorized');

  // Going back to the app does not resurrect the session.
  await bob.goto('/');
  await expect(bob).toHaveURL(/\/signin$/);
  // Alice, signed in elsewhere, is unaffected and sees Bob go offline.
  await expect(alice.getByTestId('peer-status')).toHaveText('Offline');
});

test('the app works under the server’s security headers', async ({ request }) => {
  const response = await request.get('/');
  const csp = response.headers()['content-security-policy'] ?? '';
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("connect-src 'self';");
  expect(csp).not.toContain('unsafe-inline');
  const errors: string[] = [];
  const page = await aliceContext.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused/i.test(m.text()))
      errors.push(m.text());
  });
  await page.goto('/');
  await expect(page.getByTestId('me')).toHaveText(ALICE);
  // Every component's styles applied (through the page's nonce) and the socket open under
  // connect-src 'self': the conversation shows, with live presence.
  await openConversation(page, BOB);
  await expect(page.getByTestId('peer-status')).toBeVisible();
  await page.keyboard.press('Control+k');
  await expect(page.getByRole('dialog')).toBeVisible();
  await page.keyboard.press('Escape');
  const avatarSize = await page
    .locator('app-avatar')
    .first()
    .evaluate((el) => getComputedStyle(el).getPropertyValue('--size'));
  expect(avatarSize.trim()).toBe('36px');
  expect(errors).toEqual([]);
  await page.close();
});
