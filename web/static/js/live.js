// The pushed side of the contract: a websocket that reconnects by itself, and polling meanwhile.
//
// While the socket is down the page must not freeze, so `poll` runs every few seconds until the
// socket is back; then the subscriptions are sent again and `onOpen` lets the page refetch what
// it may have missed.

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const POLL_EVERY_MS = 2_000;

export class LiveChannel {
  /**
   * @param {object} options
   * @param {() => string} options.url        the websocket URL (read at each attempt)
   * @param {() => string[]} [options.protocols] subprotocols to offer (read at each attempt)
   * @param {(event: object) => void} options.onEvent
   * @param {(state: "connecting"|"live"|"polling"|"stopped") => void} options.onState
   * @param {() => Promise<void>} options.poll  called while the socket is down
   * @param {() => void} [options.onOpen]       called after each (re)connection
   */
  constructor({ url, protocols, onEvent, onState, poll, onOpen }) {
    this.url = url;
    this.protocols = protocols ?? (() => []);
    this.onEvent = onEvent;
    this.onState = onState;
    this.poll = poll;
    this.onOpen = onOpen ?? (() => {});
    this.socket = null;
    this.subscriptions = new Map();
    this.running = false;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.pollTimer = null;
    this.pollGeneration = 0;
    this.polling = false;
    this.state = "stopped";
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    this.stopPolling();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "bye");
    }
    this.setState("stopped");
  }

  /** Follow seat changes of one concert date (kept across reconnections). */
  subscribe(concertId, date) {
    const key = `${concertId}/${date}`;
    if (this.subscriptions.has(key)) return;
    this.subscriptions.set(key, { concertId, date });
    this.send({ type: "subscribe", concertId, date });
  }

  unsubscribe(concertId, date) {
    if (this.subscriptions.delete(`${concertId}/${date}`)) {
      this.send({ type: "unsubscribe", concertId, date });
    }
  }

  get live() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (this.live) this.socket.send(JSON.stringify(message));
  }

  connect() {
    if (!this.running) return;
    this.setState(this.attempt === 0 ? "connecting" : "polling");
    let socket;
    try {
      socket = new WebSocket(this.url(), this.protocols());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.stopPolling();
      for (const { concertId, date } of this.subscriptions.values()) {
        socket.send(JSON.stringify({ type: "subscribe", concertId, date }));
      }
      this.setState("live");
      this.onOpen();
    });
    socket.addEventListener("message", (message) => {
      if (socket !== this.socket) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event && typeof event.type === "string") this.onEvent(event);
    });
    socket.addEventListener("close", () => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.scheduleReconnect();
    });
    // An error is always followed by close; nothing more to do here.
  }

  scheduleReconnect() {
    if (!this.running) return;
    this.startPolling();
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.attempt);
    const jitter = base * (0.8 + Math.random() * 0.4); // spread a crowd's reconnects apart
    this.attempt += 1;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), jitter);
  }

  startPolling() {
    this.setState("polling");
    if (this.pollTimer !== null) return;
    const generation = ++this.pollGeneration;
    const tick = async () => {
      if (generation !== this.pollGeneration) return;
      if (!this.running || this.live) {
        this.pollTimer = null;
        return;
      }
      if (!this.polling) {
        this.polling = true;
        try {
          await this.poll();
        } catch {
          // the page shows its own errors; polling just goes on
        } finally {
          this.polling = false;
        }
      }
      if (generation === this.pollGeneration && this.pollTimer !== null) {
        this.pollTimer = setTimeout(tick, POLL_EVERY_MS);
      }
    };
    this.pollTimer = setTimeout(tick, 0);
  }

  stopPolling() {
    this.pollGeneration += 1;
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }
}
