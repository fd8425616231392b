// The dashboard: counts by state per site, jobs running and in error, recent events; it
// follows the `events` subscription (resuming from its last cursor), it never polls.

import { coalesced, gql } from "./api.js";
import { badge, h, hashOf, heading, link, section, table, when } from "./dom.js";

const COUNTS = `{
  structureCounts(groupBy: [SITE, STATE]) { site state count }
  foundationCounts(groupBy: [SITE, STATE]) { site state count }
  running: jobs { id state scriptName target targetKind progress message }
  failed: jobs(state: ERROR) { id state scriptName target targetKind progress message }
}`;

const EVENTS = `subscription ($after: String) {
  events(after: $after) { cursor at kind objectType objectId objectName actor changed }
}`;

const NEWEST = `query ($last: Int!) {
  events(last: $last) { cursor events { cursor at kind objectType objectId objectName actor changed } }
}`;
const RECENT = 25;

function countTable(caption, groups, states) {
  const bySite = new Map();
  for (const group of groups) {
    const row = bySite.get(group.site) || { site: group.site };
    row[group.state] = group.count;
    bySite.set(group.site, row);
  }
  const columns = [
    ["Site", (row) => link(hashOf("sites", { site: row.site }), row.site)],
    ...states.map((state) => [
      state.toLowerCase(),
      (row) => (row[state] ? h("span", { class: `count state-${state.toLowerCase()}` }, row[state]) : "0"),
    ]),
  ];
  return table(caption, columns, [...bySite.values()], "nothing in the inventory yet");
}

export function jobTable(caption, jobs, empty) {
  return table(
    caption,
    [
      ["Job", (job) => link(`#/job/${job.id}`, `#${job.id} ${job.scriptName}`)],
      ["Target", (job) => job.target],
      ["State", (job) => badge(job.state)],
      ["Progress", (job) => h("progress", { max: "100", value: job.progress, "aria-label": `job ${job.id} progress` }, `${job.progress}%`)],
      ["Message", (job) => job.message || "—"],
    ],
    jobs,
    empty,
  );
}

export async function render(context) {
  const holder = h("div", { id: "counts" });
  const fill = async () => {
    const data = await gql(COUNTS);
    const running = data.running.filter((job) => job.state !== "ERROR");
    holder.replaceChildren(
      h(
        "div",
        { class: "grid" },
        section("Structures by state", countTable("structures per site and state", data.structureCounts, ["PLANNED", "BUILT"])),
        section(
          "Foundations by state",
          countTable("foundations per site and state", data.foundationCounts, ["PLANNED", "LOCATED", "BUILT"]),
        ),
      ),
      section(`Jobs running (${running.length})`, jobTable("running jobs", running, "no job is running")),
      section(`Jobs in error (${data.failed.length})`, jobTable("jobs in error", data.failed, "no job is in error")),
    );
  };
  await fill();

  const list = h("ol", { class: "events", id: "recent-events", "aria-live": "polite" });
  const show = (event) => {
    list.prepend(
      h(
        "li",
        {},
        when(event.at),
        " ",
        h("strong", {}, `${event.objectType} ${event.objectName}`),
        ` ${event.kind}`,
        event.changed.length ? ` (${event.changed.join(", ")})` : "",
        event.actor ? ` by ${event.actor}` : "",
      ),
    );
    while (list.children.length > RECENT) list.lastChild.remove();
  };
  // the newest events first, then live from the cursor they end at: nothing in between is
  // missed, and after a dropped connection the subscription resumes from the last cursor
  const newest = (await gql(NEWEST, { last: RECENT })).events;
  for (const event of newest.events) show(event);
  let cursor = newest.cursor;
  // many events arrive in bursts while jobs run: one re-count per burst
  const refill = coalesced(400, fill);
  const stop = context.live.subscribe(EVENTS, () => ({ after: cursor }), {
    next: ({ events: event }) => {
      cursor = event.cursor;
      show(event);
      refill();
    },
    error: (error) => list.prepend(h("li", { class: "error" }, error.message)),
  });
  context.onleave(() => {
    stop();
    refill.cancel();
  });
  return h(
    "div",
    {},
    heading("Dashboard"),
    holder,
    section("Recent events", h("p", { class: "hint" }, `Live: the newest first (the last ${RECENT}).`), list),
  );
}
