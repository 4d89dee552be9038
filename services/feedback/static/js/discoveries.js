// My discoveries: the curve of labels and likes over time, and a gallery of what was liked.
import { get, stampUrl } from "./api.js";
import { explorerLinks } from "./explorers.js";
import { utc } from "./format.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const W = 760;
const H = 300;
const PAD = { left: 50, right: 20, top: 20, bottom: 40 };

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

export function curveSvg(curve) {
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "curve-t curve-d" });
  const last = curve[curve.length - 1] || { labelled: 0, liked: 0, at: 0 };
  root.append(
    svg("title", { id: "curve-t" }, "Discovery curve"),
    svg("desc", { id: "curve-d" }, `${last.labelled} labels, ${last.liked} of them interesting, over time.`),
  );
  const t0 = curve.length ? curve[0].at : 0;
  const span = Math.max(last.at - t0, 1e-9);
  const ymax = Math.max(last.labelled, 1);
  const x = (p, i) => PAD.left + (W - PAD.left - PAD.right) * (last.at > t0 ? (p.at - t0) / span : i / Math.max(curve.length - 1, 1));
  const y = (v) => H - PAD.bottom - (H - PAD.top - PAD.bottom) * (v / ymax);
  root.append(
    svg("line", { class: "axis", x1: PAD.left, y1: y(0), x2: W - PAD.right, y2: y(0) }),
    svg("line", { class: "axis", x1: PAD.left, y1: y(0), x2: PAD.left, y2: PAD.top }),
    svg("text", { x: PAD.left - 8, y: y(0) + 4, "text-anchor": "end" }, "0"),
    svg("text", { x: PAD.left - 8, y: y(ymax) + 4, "text-anchor": "end" }, String(ymax)),
  );
  if (curve.length) {
    root.append(
      svg("text", { x: PAD.left, y: H - 12 }, utc(t0)),
      svg("text", { x: W - PAD.right, y: H - 12, "text-anchor": "end" }, utc(last.at)),
    );
    for (const [cls, key] of [["labelled", "labelled"], ["liked", "liked"]]) {
      const points = curve.map((p, i) => `${x(p, i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
      root.append(svg("polyline", { class: cls, points }));
    }
  }
  return root;
}

export async function showDiscoveries() {
  const d = await get("/v1/me/discoveries?gallery=24&points=400");
  $("discoveries-summary").textContent = d.labelled
    ? `You labelled ${d.labelled} alert${d.labelled === 1 ? "" : "s"} and marked ${d.liked} interesting.`
    : "No labels yet: answer a few questions first.";
  $("curve").replaceChildren(curveSvg(d.curve));
  $("gallery").replaceChildren(
    ...d.gallery.map((g) => {
      const li = document.createElement("li");
      const pair = document.createElement("div");
      pair.className = "pair";
      for (const which of ["science", "difference"]) {
        const img = document.createElement("img");
        img.src = stampUrl(g.alert_id, which, "zscale");
        img.alt = `${which} stamp of ${g.object_id || g.alert_id}`;
        img.width = 63;
        img.height = 63;
        img.loading = "lazy";
        pair.append(img);
      }
      const caption = document.createElement("p");
      caption.textContent = `${g.label} · ${g.object_id || g.alert_id} · ${utc(g.labelled_at)}`;
      const links = document.createElement("p");
      for (const l of explorerLinks(g.survey, g.object_id)) {
        const a = document.createElement("a");
        Object.assign(a, { href: l.href, target: "_blank", rel: "noopener noreferrer", textContent: l.name });
        links.append(a, " ");
      }
      li.append(pair, caption, links);
      return li;
    }),
  );
}
