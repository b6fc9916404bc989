// A TCP proxy that cuts event streams at random points, as flaky networks,
// proxies and load balancers do; the JavaScript twin of Go's
// testenv.CutProxy.
//
//   const proxy = await startCutProxy(sluice.url, { seed: 7 });
//   new SluiceClient({ baseURL: proxy.url });
//   proxy.cuts; proxy.cutAll(); await proxy.close();
//
// It adds Connection: close to every request, so that each response has a
// connection of its own, then passes the response head whole and cuts the
// body of a text/event-stream response after a random number of bytes
// (from 0 to maxBytes - 1, wherever that falls: inside an event, a line or
// a UTF-8 character). Other responses pass whole.

import net from 'node:net';

/** A small seeded generator (mulberry32), so that a run can be repeated. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Starts a proxy to target (http://host:port). Options: seed; spare (the
 * chance that an event stream is left whole, 0 by default); maxBytes
 * (8192); stall (instead of closing a cut connection, pass nothing more
 * on it and hold it open, as a dead network path does).
 */
export async function startCutProxy(target, { seed = 1, spare = 0, maxBytes = 8192, stall = false } = {}) {
  const { hostname, port } = new URL(target);
  const rand = random(seed);
  const sockets = new Set();
  const stats = { streams: 0, cuts: 0 };

  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {}); // a cut is the point; the other side is closed below
      s.on('close', () => sockets.delete(s));
    }
    // When the client goes, so does the server's side; when the server's
    // side goes, what was written to the client still reaches it first.
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.end());

    // The request: its head with Connection: close added, then the rest.
    let req = Buffer.alloc(0);
    let headSent = false;
    client.on('data', (chunk) => {
      if (headSent) return void upstream.write(chunk);
      req = Buffer.concat([req, chunk]);
      const end = req.indexOf(HEAD_END);
      if (end < 0) return;
      headSent = true;
      upstream.write(Buffer.concat([req.subarray(0, end), Buffer.from('\r\nConnection: close\r\n\r\n'), req.subarray(end + 4)]));
    });

    // The response: the head whole, then the body, cut if it is a stream.
    let res = Buffer.alloc(0);
    let left = -1; // bytes of the body still to pass; -1: all of them
    let inBody = false;
    upstream.on('data', (chunk) => {
      if (!inBody) {
        res = Buffer.concat([res, chunk]);
        const end = res.indexOf(HEAD_END);
        if (end < 0) return;
        inBody = true;
        const head = res.subarray(0, end + 4);
        client.write(head);
        if (/\r\ncontent-type:\s*text\/event-stream/i.test(head.toString('latin1'))) {
          stats.streams++;
          if (rand() >= spare) left = Math.floor(rand() * maxBytes);
        }
        chunk = res.subarray(end + 4);
      }
      if (left < 0) return void client.write(chunk);
      if (chunk.length < left) {
        left -= chunk.length;
        return void client.write(chunk);
      }
      client.write(chunk.subarray(0, left));
      left = 0;
      stats.cuts++;
      inBody = 'cut';
      upstream.removeAllListeners('data');
      if (stall) {
        upstream.pause(); // hold on, passing nothing, until the client gives up
      } else {
        client.end();
        upstream.destroy();
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get streams() {
      return stats.streams;
    },
    get cuts() {
      return stats.cuts;
    },
    /** Cuts every connection open now. */
    cutAll() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
