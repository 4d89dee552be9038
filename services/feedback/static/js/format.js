// Numbers as astronomers read them. Pure functions.

const pad = (n, width, digits = 0) => n.toFixed(digits).padStart(width + (digits ? digits + 1 : 0), "0");

// 150.025 -> "10:00:06.00"
export function raHms(deg) {
  if (deg == null || !Number.isFinite(deg)) return "–";
  let s = ((deg % 360) + 360) % 360 / 15 * 3600;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(Math.min(s, 59.99), 2, 2)}`;
}

// -2.5 -> "−02:30:00.0"
export function decDms(deg) {
  if (deg == null || !Number.isFinite(deg)) return "–";
  const sign = deg < 0 ? "−" : "+";
  let s = Math.abs(deg) * 3600;
  const d = Math.floor(s / 3600); s -= d * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return `${sign}${pad(d, 2)}:${pad(m, 2)}:${pad(Math.min(s, 59.9), 2, 1)}`;
}

export function utc(unixSeconds) {
  if (unixSeconds == null || !Number.isFinite(unixSeconds)) return "–";
  return new Date(unixSeconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export const mjdToUnix = (mjd) => (mjd == null ? null : (mjd - 40587) * 86400);
export const unixToMjd = (s) => (s == null ? null : s / 86400 + 40587);

export const num = (x, digits) => (x == null || !Number.isFinite(x) ? "–" : x.toFixed(digits));

export const REASONS = {
  top: "top pick: among the best personal scores",
  uncertain: "uncertain: the model is unsure, your answer teaches it most",
  random: "random: exploration, to keep the picture honest",
};
