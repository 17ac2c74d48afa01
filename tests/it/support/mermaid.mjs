// Parses Mermaid diagrams with Mermaid itself (in Node, over jsdom): the diagrams are read
// from stdin, separated by a line `---`; prints `ok` or `ERR <first line of the error>` for
// each and exits 1 if any failed. Used by tests/it/plan_markdown.rs.
import fs from 'fs';
import { JSDOM } from 'jsdom';
const dom = new JSDOM('<!DOCTYPE html><body></body>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });
let failed = 0;
for (const block of fs.readFileSync(0, 'utf8').split('\n---\n')) {
  if (!block.trim()) continue;
  try {
    await mermaid.parse(block);
    console.log('ok');
  } catch (e) {
    failed++;
    console.log('ERR', String(e.message || e).split('\n').slice(0, 3).join(' / '));
  }
}
process.exit(failed ? 1 : 0);
