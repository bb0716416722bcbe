// Playwright settings for the end-to-end suite; run it through `npm run e2e`, which starts chatd.
import { defineConfig } from '@playwright/test';

const baseURL = process.env['CHATD_URL'];
if (!baseURL) throw new Error('CHATD_URL is not set: run the suite with `npm run e2e`');

export default defineConfig({
  testDir: './tests',
  outputDir: './artifacts/test-results',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  use: {
    baseURL,
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env['CHROMIUM_BIN'] ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-dev-shm-usage',
      ],
    },
    screenshot: 'only-on-failure',
    trace: 'off',
  },
});
