import { chromium } from '@playwright/test';
const B = 'http://127.0.0.1:38991';
const [path, n, sender] = [process.argv[2] ?? '/', Number(process.argv[3] ?? 300), process.argv[4] ?? 'xxb'];
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox','--disable-gpu','--disable-dev-shm-usage'] });
const ctx = await browser.newContext();
const page = await ctx.newPage();
await page.goto(B + '/signin');
const signin = async (u) => (await (await fetch(B + '/api/signin', { method: 'POST', headers: {'content-type':'application/json'}, body: JSON.stringify({username:u, password:'password123'}) })).json()).access_token;
const tokA = await signin('xxa');
await page.evaluate(({token}) => localStorage.setItem('chatd.session', JSON.stringify({token, username:'xxa'})), { token: tokA });
await page.goto(B + path);
await page.waitForTimeout(1500);
console.log('app open at', path);
if (process.env.OFFLINE) { await ctx.setOffline(true); await page.waitForTimeout(1000); await ctx.setOffline(false); await page.waitForTimeout(2000); console.log('offline cycle done'); }
const tokB = await signin(sender);
for (let i = 0; i < n; i++) {
  try {
    const r = await fetch(B + '/api/messages/xxa', { signal: AbortSignal.timeout(5000), method: 'POST', headers: {'content-type':'application/json', authorization: 'Bearer ' + tokB}, body: JSON.stringify({body: 'r' + i, client_id: `r-${Date.now()}-${i}`}) });
    if (r.status !== 201) console.log(i, r.status);
  } catch (e) { console.log('HANG at', i, e.name); break; }
}
console.log('title', await page.title(), page.url(), (await page.locator('body').innerText()).slice(0,300));
await browser.close();
