// Helpers the browser tests share: screenshots at both sizes, signing up and in, sending.
import { expect, type Locator, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

// run.mjs passes the folder; Playwright runs from client/ otherwise.
const shots = resolve(process.env['CHATD_E2E_ARTIFACTS'] ?? join('e2e', 'artifacts'));
mkdirSync(shots, { recursive: true });

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 360, height: 740 };
export const PASSWORD = 'correct horse battery';
/** Keeps names unique across runs against one server. */
export const suffix = Date.now().toString(36).slice(-5);

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), animations: 'disabled' });
}

/** Screenshots one screen at both widths, restoring the page's own size afterwards. */
export async function shotBoth(
  page: Page,
  name: string,
  prepare?: () => Promise<void>,
): Promise<void> {
  const original = page.viewportSize();
  for (const [label, size] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ] as const) {
    await page.setViewportSize(size);
    await prepare?.();
    await page.waitForTimeout(150);
    await shot(page, `${name}-${label}`);
  }
  if (original) await page.setViewportSize(original);
}

export function conversationRow(page: Page, peer: string): Locator {
  return page.locator(`[data-testid="conversation"][data-peer="${peer}"]`);
}

export function bodies(page: Page): Locator {
  return page.getByTestId('message-log').getByTestId('message-body');
}

export async function signUp(page: Page, username: string): Promise<void> {
  await page.goto('/signup');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByTestId('me')).toHaveText(username);
}

export async function signIn(page: Page, username: string): Promise<void> {
  await page.goto('/signin');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page.getByTestId('me')).toHaveText(username);
}

/** Marks the page's current document, so a test can tell it was never reloaded. */
export async function markDocument(page: Page): Promise<void> {
  await page.evaluate(() => ((window as unknown as { e2eMark?: boolean }).e2eMark = true));
}

export async function documentIsMarked(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as unknown as { e2eMark?: boolean }).e2eMark === true);
}

export async function send(page: Page, text: string): Promise<void> {
  const composer = page.getByTestId('composer');
  await composer.fill(text);
  await composer.press('Enter');
}

export async function openConversation(page: Page, peer: string): Promise<void> {
  await conversationRow(page, peer).click();
  await expect(page.getByRole('heading', { level: 1, name: peer })).toBeVisible();
}
