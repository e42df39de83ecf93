/** The date forms the ASC MHL uses: xs:dateTime in UTC for contents, and the file-name stamp. */

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** xs:dateTime in UTC to the second, as the reference implementation writes it: 2020-01-16T09:15:00+00:00. */
export function formatDateTime(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new RangeError("an invalid Date cannot be written to a manifest");
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}+00:00`;
}

/** The <date>_<time> part of a manifest file name (spec 6.3): 2020-01-16_091500Z, in UTC. */
export function fileNameStamp(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}_${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
}
