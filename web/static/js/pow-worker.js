// A Web Worker that solves a waiting room's proof-of-work challenge off the page's thread.
//
// Given {challenge, difficulty}, it tries nonces until SHA-256 of `challenge + ":" + nonce`
// has `difficulty` leading zero bits (what the server checks), posting
// {type: "progress", tried, expected} now and then and {type: "solved", nonce, tried} at the
// end. `expected` is 2^difficulty, the number of tries it takes on average.

const PROGRESS_EVERY = 256; // tries between two progress messages

function leadingZeroBits(bytes) {
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

self.onmessage = async (event) => {
  const { challenge, difficulty } = event.data;
  const encoder = new TextEncoder();
  const expected = 2 ** difficulty;
  for (let tried = 1; ; tried += 1) {
    const nonce = tried.toString(36);
    const data = encoder.encode(`${challenge}:${nonce}`);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    if (leadingZeroBits(digest) >= difficulty) {
      self.postMessage({ type: "solved", nonce, tried });
      return;
    }
    if (tried % PROGRESS_EVERY === 0) self.postMessage({ type: "progress", tried, expected });
  }
};
