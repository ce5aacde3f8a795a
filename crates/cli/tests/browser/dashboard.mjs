// The dashboard of `dualsync serve` in Debian's headless chromium, as an
// operator uses it. crates/cli/tests/serve/browser.rs prepares the apps
// (a failed row fixed at its source, a queued conflict, the map paused),
// runs this, then checks the databases.
//
// env: BASE (http://127.0.0.1:PORT), TOKEN (an operator's), SHOTS (a folder
// for screenshots), CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";

const { BASE, TOKEN, SHOTS } = process.env;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const shot = (name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
const step = (what) => console.log(`step: ${what}`);
const expectText = async (selector, text) => {
  await page.locator(selector, { hasText: text }).first().waitFor({ timeout: 20000 });
};

try {
  step("a page without a session leads to the login");
  await page.goto(`${BASE}/`);
  await page.waitForURL(`${BASE}/login`);
  await page.fill("#token", "dst_wrong");
  await page.click("button[type=submit]");
  await expectText("p.bad", "not known");
  await shot("login");

  step("log in with a token and see the maps");
  await page.fill("#token", TOKEN);
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/`);
  await expectText("main td a", "items");
  await expectText("main td .state", "paused");
  const cookie = (await page.context().cookies()).find((c) => c.name === "dualsync_token");
  if (!cookie || !cookie.httpOnly || cookie.sameSite !== "Strict") throw new Error(`session cookie: ${JSON.stringify(cookie)}`);
  await shot("overview");

  step("the map's page");
  await page.click("main td a >> text=items");
  await expectText("h2", "Last run per company");
  await shot("map");

  step("retry the failed row, fixed at its source");
  await page.goto(`${BASE}/errors`);
  const row = page.locator("tr", { hasText: '["k4"]' });
  await row.waitFor();
  await shot("errors");
  await row.locator("button", { hasText: "Retry" }).click();
  await expectText("#notice", "retried");
  await expectText("p.empty", "No errors match.");

  step("resolve the conflict with b's row");
  await page.goto(`${BASE}/conflicts`);
  await expectText("section.conflict", "changed in both");
  await shot("conflicts");
  await page.click("button >> text=Keep b's row");
  await expectText("#notice", "resolved");
  await expectText("p.empty", "No open conflicts.");

  step("resume the map, then pause it, and watch its state change");
  await page.goto(`${BASE}/`);
  await page.click("button >> text=Resume");
  await expectText("main td .state", "running");
  await page.click("button >> text=Pause");
  await expectText("main td .state", "paused");

  step("stop the map, start it again, and see its job run to the end");
  page.on("dialog", (dialog) => dialog.accept());
  await page.click("main td a >> text=items");
  await page.click("button >> text=Stop");
  await expectText("dd .state", "stopped");
  await page.click("button >> text=Start");
  await expectText("tr.job", "start");
  await expectText("tr.job", "done");
  await expectText("dd .state", "running");
  const rowsRead = Number(await page.locator("tr.job td.n").nth(1).textContent());
  if (!(rowsRead > 0)) throw new Error(`the start job read ${rowsRead} rows`);
  await shot("map-job");

  step("run a plan and read its report");
  await page.goto(`${BASE}/plan`);
  await page.click("button >> text=Run plan");
  await expectText("h2", "Last plan");
  await expectText("h2", "done");
  await expectText("td", "items");
  await shot("plan");

  step("the activity log says who did what");
  await page.goto(`${BASE}/activity`);
  await expectText("td", "resolve");
  await shot("activity");

  step("the overview on a phone");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${BASE}/`);
  await shot("overview-phone");
  console.log("ok");
} catch (err) {
  console.error(`FAILED: ${err.message}`);
  await shot("failure").catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
