// An initial sync started from the dashboard, watched as it runs: the map
// page is read again and again, and the start job's rows must be seen
// growing before it ends. crates/cli/tests/serve/browser.rs prepares a
// stopped map with many rows and runs this.
//
// env: BASE, TOKEN (an operator's), SHOTS, CHROMIUM.
import { chromium } from "playwright-core";

const { BASE, TOKEN, SHOTS } = process.env;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
try {
  await page.goto(`${BASE}/login`);
  await page.fill("#token", TOKEN);
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/`);
  await page.goto(`${BASE}/maps/items`);
  await page.click("button >> text=Start");
  await page.locator("tr.job").first().waitFor({ timeout: 20000 });
  const seen = [];
  let status = "";
  const until = Date.now() + 120000;
  while (status !== "done") {
    if (Date.now() > until) throw new Error(`the start job did not end: ${status}, rows seen ${seen}`);
    await page.reload();
    const row = page.locator("tr.job").first();
    status = (await row.locator("td").nth(2).textContent()).trim();
    const rows = Number(await row.locator("td.n").nth(1).textContent());
    if (status === "running" && rows > 0 && !seen.includes(rows)) {
      seen.push(rows);
      if (seen.length === 2) await page.screenshot({ path: `${SHOTS}/map-progress.png`, fullPage: true });
    }
    if (["failed", "cancelled"].includes(status)) throw new Error(`the start job ${status}`);
  }
  if (seen.length < 2) throw new Error(`the progress was not seen moving: rows seen while running: ${seen}`);
  console.log(`ok: rows seen while running: ${seen.join(", ")}`);
} catch (err) {
  console.error(`FAILED: ${err.message}`);
  await page.screenshot({ path: `${SHOTS}/progress-failure.png`, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
