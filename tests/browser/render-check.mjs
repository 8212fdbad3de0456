// Renders an HTML file lethe wrote in a real browser (Debian's headless Chromium) and checks it:
//   node render-check.mjs PAGE.html SHOT.png [EXPECTED TEXT…]
// - the page loads with the network off (a proxy that answers nothing) and names nothing outside
//   itself to load: no src, href, srcset, action or data attribute, CSS url() or @import to
//   another host, no script from a file;
// - the screenshot is not blank: more than 2% of its pixels differ from the most common colour;
// - the text of the DOM as Chromium parsed it holds every EXPECTED TEXT.
// Prints one JSON line of what it found; exit 0 when every check passed, 1 when one failed, 2
// when it could not run. No npm package: the PNG is read with node's own zlib.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { inflateSync } from 'node:zlib';

const [page, shot, ...expected] = process.argv.slice(2);
if (!page || !shot) {
  console.error('usage: node render-check.mjs PAGE.html SHOT.png [EXPECTED TEXT...]');
  process.exit(2);
}
const url = 'file://' + resolve(page);
const chromium = process.env.CHROMIUM || 'chromium';
// A fresh profile each time, no network: a page that needs one renders without it.
const flags = ['--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
  '--no-first-run', '--disable-extensions', '--disable-background-networking',
  '--proxy-server=127.0.0.1:9', '--proxy-bypass-list=<-loopback>',
  `--user-data-dir=${resolve(shot)}.profile`, '--window-size=1100,1400'];

function run(extra) {
  return execFileSync(chromium, [...flags, ...extra, url],
    { encoding: 'latin1', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 });
}

// RGBA or RGB pixels of an 8-bit, non-interlaced PNG, as [width, height, channels, bytes].
function decodePng(buf) {
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let pos = 8, width = 0, height = 0, channels = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8], colour = data[9], interlace = data[12];
      channels = { 2: 3, 6: 4 }[colour];
      if (depth !== 8 || !channels || interlace !== 0) throw new Error('unexpected PNG format');
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[y * stride + x - channels] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? out[(y - 1) * stride + x - channels] : 0;
      let v = line[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + x] = v & 255;
    }
  }
  return [width, height, channels, out];
}

const result = { page, ok: false };
try {
  run([`--screenshot=${resolve(shot)}`]);
  const [w, h, ch, px] = decodePng(readFileSync(shot));
  const counts = new Map();
  for (let i = 0; i < px.length; i += ch) {
    const key = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const background = Math.max(...counts.values());
  result.width = w;
  result.height = h;
  result.colours = counts.size;
  result.inked = Number((1 - background / (w * h)).toFixed(4));
  const dom = run(['--dump-dom']);
  const text = dom.replace(/<style[\s\S]*?<\/style>/g, ' ').replace(/<[^>]+>/g, ' ')
    .replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/\s+/g, ' ');
  result.missing = expected.filter((e) => !text.includes(e));
  // Anything that would load from elsewhere: an attribute, a srcset, CSS url() or @import.
  result.external = [
    ...(dom.match(/(?:src|href|srcset|action|data)="\s*(?:https?:)?\/\/[^"]*"/gi) || []),
    ...(dom.match(/url\(\s*['"]?\s*(?:https?:)?\/\/[^)]*\)/gi) || []),
    ...(dom.match(/@import[^;]*/gi) || []),
    ...(dom.match(/<script\b[^>]*\bsrc=/gi) || []),
  ];
  result.ok = result.inked > 0.02 && result.colours > 2 && result.missing.length === 0 &&
    result.external.length === 0;
} catch (e) {
  result.error = String(e.message || e).split('\n')[0];
  console.log(JSON.stringify(result));
  process.exit(2);
} finally {
  rmSync(`${resolve(shot)}.profile`, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
