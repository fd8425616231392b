// Address blocks with used and free offsets, DNS zones with their published text and
// problems, webhook targets with their delivery log.

import { ERROR_FIELDS, gql, result } from "./api.js";
import { action, badge, fields, h, heading, link, pageSize, pager, section, table, when } from "./dom.js";

const BLOCKS = `{
  addressBlocks(first: 1000) { totalCount nodes {
    id name cidr gateway netmask size site { name }
    usage { total static reserved dynamic free }
  } }
}`;

// one page of the block's addresses, the first runs of free offsets and the block's own
// pools: never the whole block (a /16 may hold thousands of addresses)
const BLOCK = `query ($id: Int!, $first: Int, $after: String, $ranges: Int) {
  addressBlock(id: $id) {
    id name version cidr gateway gatewayOffset netmask size site { name }
    usage { total static reserved dynamic free }
    addresses(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes {
        __typename id offset ipAddress
        ... on Address { interfaceName isPrimary structure { id hostname } }
        ... on ReservedAddress { reason }
        ... on DynamicAddress { pxe { name } }
      }
    }
    freeRanges(first: $ranges) { first last }
    dhcpPools { id firstOffset lastOffset description }
  }
}`;

// the list without any zone's text (a zone file may be megabytes): each text is read when
// its zone is opened
const ZONES = `{
  publishedZones { name kind serial valid problems { code message record } }
}`;

const ZONE_TEXT = `query ($name: String!) { publishedZones(name: $name) { name text } }`;

const HOOKS = `{
  webhookTargets { id name url active cursor created filter { objectTypes kinds siteId blueprintId } }
  webhookDeliveries(first: 100) {
    id targetId eventCursor objectKey state attempts created nextAttemptAt lastAttemptAt
    responseCode error finishedAt
  }
}`;

function used(usage) {
  const taken = usage.static + usage.reserved + usage.dynamic;
  return h(
    "span",
    { class: "usage" },
    h("meter", { min: "0", max: String(usage.total), value: String(taken), "aria-label": "used addresses" }),
    ` ${taken} used, ${usage.free} free of ${usage.total}`,
  );
}

export async function blocks() {
  const data = (await gql(BLOCKS)).addressBlocks;
  return h(
    "div",
    {},
    heading("Address blocks"),
    table(
      "address blocks",
      [
        ["Block", (b) => link(`#/block/${b.id}`, b.name)],
        ["Subnet", (b) => b.cidr],
        ["Site", (b) => b.site.name],
        ["Gateway", (b) => b.gateway || "—"],
        ["Static", (b) => b.usage.static],
        ["Reserved", (b) => b.usage.reserved],
        ["Dynamic", (b) => b.usage.dynamic],
        ["Used / free", (b) => used(b.usage)],
      ],
      data.nodes,
      "no address block",
    ),
  );
}

const RANGES = 100; // free runs shown; a fragmented block says there are more

/** The free runs as text, e.g. "5–9, 12"; the server computes them (ranges + 1 asked). */
function freeText(ranges) {
  if (!ranges.length) return "none";
  const text = ranges.slice(0, RANGES).map((r) => (String(r.first) === String(r.last) ? `${r.first}` : `${r.first}–${r.last}`));
  return text.join(", ") + (ranges.length > RANGES ? ", and more" : "");
}

export async function block({ args, params }) {
  const id = Number(args[0]);
  const first = pageSize(params);
  const data = await gql(BLOCK, { id, first, after: params.after || null, ranges: RANGES + 1 });
  const b = data.addressBlock;
  if (!b) throw new Error(`there is no address block ${args[0]}`);
  const listed = b.addresses;
  const rows = [...listed.nodes];
  // the gateway is no address row: shown on the page whose offsets span it
  if (b.gatewayOffset !== null) {
    const gateway = BigInt(b.gatewayOffset);
    const above = params.after && params.from ? gateway > BigInt(params.from) : true;
    const below = !listed.pageInfo.hasNextPage || (rows.length && gateway <= BigInt(rows[rows.length - 1].offset));
    if (above && below) rows.push({ __typename: "gateway", offset: b.gatewayOffset, ipAddress: b.gateway, reason: "the gateway" });
  }
  rows.sort((x, y) => (BigInt(x.offset) < BigInt(y.offset) ? -1 : 1));
  const page = Number(params.page || 1);
  const last = listed.nodes.length ? listed.nodes[listed.nodes.length - 1].offset : null;
  return h(
    "div",
    {},
    heading(`Address block ${b.name} ${b.cidr}`),
    fields([
      ["Site", b.site.name],
      ["Gateway", b.gateway ? `${b.gateway} (offset ${b.gatewayOffset})` : null],
      ["Netmask", b.netmask],
      ["Size", b.size],
      ["Used", used(b.usage)],
      ["Structures in it", link(`#/structures?block=${b.id}`, "list them")],
    ]),
    section(
      "Used offsets",
      table(
        "used offsets",
        [
          ["Offset", (a) => a.offset],
          ["IP address", (a) => a.ipAddress],
          ["Use", (a) => ({ Address: "static", ReservedAddress: "reserved", DynamicAddress: "dynamic", gateway: "reserved" })[a.__typename] || a.__typename],
          [
            "For",
            (a) =>
              a.structure
                ? [link(`#/structure/${a.structure.id}`, a.structure.hostname), ` ${a.interfaceName}${a.isPrimary ? " (primary)" : ""}`]
                : a.reason || (a.pxe ? `boots ${a.pxe.name}` : "—"),
          ],
        ],
        rows,
        "every offset is free",
      ),
      pager(`block/${b.id}`, { ...params, from: last === null ? null : String(last) }, listed.pageInfo, page, listed.nodes.length, listed.totalCount),
    ),
    section("Free offsets", h("p", { id: "free-offsets" }, freeText(b.freeRanges))),
    section(
      "DHCP pools",
      table(
        "DHCP pools",
        [["Offsets", (p) => `${p.firstOffset}–${p.lastOffset}`], ["Description", (p) => p.description || "—"]],
        b.dhcpPools,
        "no DHCP pool",
      ),
    ),
  );
}

/** A zone's published text, read from the server when it is first opened. */
function zoneText(zone, chosen) {
  const text = h("pre", { class: "zone", "aria-live": "polite" }, "Opening reads the zone file from the server.");
  const slot = h("p", { class: "error", role: "alert" });
  const details = h("details", { open: chosen }, h("summary", {}, "Published text"), text, slot);
  let read = null;
  const load = () => {
    read ||= gql(ZONE_TEXT, { name: zone.name }).then(
      (data) => {
        text.textContent = data.publishedZones[0]?.text ?? "(none yet)";
      },
      (error) => {
        read = null; // opening it again tries again
        slot.textContent = error.words || error.message;
      },
    );
    return read;
  };
  details.addEventListener("toggle", () => {
    if (details.open) load();
  });
  return { details, load };
}

export async function zones({ params }) {
  const data = await gql(ZONES);
  const anchor = (zone) => `zone-${zone.name.replace(/[^a-z0-9]+/gi, "-")}`;
  const sections = [];
  for (const zone of data.publishedZones) {
    const chosen = params.zone === zone.name;
    const { details, load } = zoneText(zone, chosen);
    if (chosen) await load(); // the zone the address names is shown with its text
    sections.push(
      h(
        "section",
        { id: anchor(zone), "aria-label": `zone ${zone.name}` },
        h("h2", {}, `Zone ${zone.name}`),
        zone.problems.length
          ? h("ul", { class: "problems" }, zone.problems.map((p) => h("li", {}, h("strong", {}, p.code), `: ${p.message}`, p.record ? ` (${p.record})` : "")))
          : h("p", {}, "No problems."),
        details,
      ),
    );
  }
  return h(
    "div",
    {},
    heading("DNS zones"),
    table(
      "zones",
      [
        ["Zone", (zone) => h("a", { href: `#/zones?zone=${encodeURIComponent(zone.name)}` }, zone.name)],
        ["Kind", (zone) => zone.kind],
        ["Serial", (zone) => zone.serial ?? "never published"],
        ["Valid", (zone) => badge(zone.valid ? "valid" : "invalid")],
        ["Problems", (zone) => (zone.problems.length ? h("span", { class: "error" }, zone.problems.length) : "none")],
      ],
      data.publishedZones,
      "no zone",
    ),
    sections,
  );
}

export async function webhooks(context) {
  let data;
  try {
    data = await gql(HOOKS);
  } catch (error) {
    return h(
      "div",
      {},
      heading("Webhooks"),
      h("p", { class: "failure", role: "alert" }, error.words || error.message),
      h("p", { class: "hint" }, "Webhook targets and their deliveries are shown to admins."),
    );
  }
  const names = new Map(data.webhookTargets.map((t) => [t.id, t.name]));
  const deliveryAction = (d, label, mutation, what) =>
    action(label, `${label} delivery #${d.id}?`, what, async () =>
      result((await gql(`mutation ($id: Int!) { ${mutation}(id: $id) { ... on WebhookDelivery { id state } ${ERROR_FIELDS} } }`, { id: d.id }))[mutation]),
      () => context.refresh(),
    );
  return h(
    "div",
    {},
    heading("Webhooks"),
    section(
      "Targets",
      table(
        "webhook targets",
        [
          ["Name", (t) => t.name],
          ["URL", (t) => h("code", {}, t.url)],
          ["Active", (t) => (t.active ? "yes" : "no")],
          ["Filter", (t) => [t.filter.objectTypes?.join(", ") || "any object", " / ", t.filter.kinds?.join(", ") || "any kind"]],
          ["Delivered up to", (t) => `event ${t.cursor}`],
        ],
        data.webhookTargets,
        "no webhook target",
      ),
    ),
    section(
      "Delivery log (newest first)",
      table(
        "webhook deliveries",
        [
          ["Delivery", (d) => `#${d.id} to ${names.get(d.targetId) || d.targetId}`],
          ["Event", (d) => `${d.objectKey} (event ${d.eventCursor})`],
          ["State", (d) => badge(d.state)],
          ["Attempts", (d) => d.attempts],
          ["Last answer", (d) => (d.responseCode ? `HTTP ${d.responseCode}` : d.error || "—")],
          ["Finished, or next attempt", (d) => (d.finishedAt ? when(d.finishedAt) : when(d.nextAttemptAt))],
          [
            "Action",
            (d) =>
              context.can("admin")
                ? d.finishedAt
                  ? deliveryAction(d, "Retry", "retryWebhookDelivery", `Delivery #${d.id} is posted again to ${names.get(d.targetId)} now.`)
                  : deliveryAction(d, "Cancel", "cancelWebhookDelivery", `Delivery #${d.id} is given up: it is not posted again.`)
                : null,
          ],
        ],
        data.webhookDeliveries,
        "nothing delivered yet",
      ),
    ),
  );
}
