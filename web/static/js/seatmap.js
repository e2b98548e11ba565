// A seat map: one button per seat in a grid, moved through with the arrow keys.
//
// Only one seat is in the tab order at a time (roving tabindex), so a keyboard user tabs past
// the 50 seats in one step and moves among them with arrows, Home and End.

const STATUS_WORDS = {
  AVAILABLE: "available",
  HELD: "held by someone",
  CHECKOUT: "being paid for",
  SOLD: "sold",
};

export class SeatMap {
  /**
   * @param {HTMLElement} root  an empty element; it becomes the grid
   * @param {object} options
   * @param {(seat: object) => void} [options.onPick]  omitted: a read-only map
   * @param {(seat: object) => string} [options.describe]  extra words for a seat's label
   */
  constructor(root, { onPick, describe } = {}) {
    this.root = root;
    this.onPick = onPick ?? null;
    this.describe = describe ?? (() => "");
    this.seats = new Map();
    this.buttons = new Map();
    this.focusNumber = 1;
    this.root.classList.add("seats");
    if (this.onPick) {
      this.root.addEventListener("keydown", (event) => this.onKey(event));
    }
  }

  /** Draw every seat: [{number, status, price, mine?, ...}]. */
  render(seats) {
    this.seats = new Map(seats.map((seat) => [seat.number, { ...seat }]));
    this.buttons.clear();
    this.root.replaceChildren();
    if (!this.seats.has(this.focusNumber)) this.focusNumber = seats[0]?.number ?? 1;
    for (const seat of this.seats.values()) {
      const el = document.createElement(this.onPick ? "button" : "div");
      el.className = "seat";
      el.textContent = String(seat.number);
      el.dataset.seat = String(seat.number);
      if (this.onPick) {
        el.type = "button";
        el.addEventListener("click", () => this.pick(seat.number));
        el.addEventListener("focus", () => this.setFocusNumber(seat.number));
      } else {
        el.setAttribute("role", "img");
      }
      this.buttons.set(seat.number, el);
      this.root.append(el);
      this.paint(seat.number);
    }
  }

  /** Change one seat (from an event) without redrawing the others. */
  update(number, patch, { flash = false } = {}) {
    const seat = this.seats.get(number);
    if (!seat) return;
    Object.assign(seat, patch);
    this.paint(number);
    const el = this.buttons.get(number);
    if (flash && el) {
      el.dataset.flash = "false";
      void el.offsetWidth; // restart the animation
      el.dataset.flash = "true";
    }
  }

  get(number) {
    return this.seats.get(number);
  }

  all() {
    return [...this.seats.values()];
  }

  paint(number) {
    const seat = this.seats.get(number);
    const el = this.buttons.get(number);
    if (!seat || !el) return;
    el.dataset.status = seat.status;
    el.dataset.mine = seat.mine ? "true" : "false";
    const words = seat.mine
      ? seat.status === "CHECKOUT"
        ? "yours, being paid for"
        : "held by you"
      : (STATUS_WORDS[seat.status] ?? seat.status.toLowerCase());
    const extra = this.describe(seat);
    const label = `Seat ${seat.number}, ${words}${extra ? `, ${extra}` : ""}`;
    el.setAttribute("aria-label", label);
    el.title = label;
    if (this.onPick) {
      el.setAttribute("aria-pressed", seat.mine ? "true" : "false");
      // Taken seats stay focusable (aria-disabled, not disabled) so arrows can pass over them.
      el.setAttribute("aria-disabled", seat.status === "AVAILABLE" || seat.mine ? "false" : "true");
      el.tabIndex = number === this.focusNumber ? 0 : -1;
    }
  }

  pick(number) {
    const seat = this.seats.get(number);
    if (!seat || !this.onPick) return;
    this.setFocusNumber(number);
    this.onPick({ ...seat });
  }

  setFocusNumber(number) {
    if (number === this.focusNumber) return;
    const previous = this.buttons.get(this.focusNumber);
    if (previous) previous.tabIndex = -1;
    this.focusNumber = number;
    const current = this.buttons.get(number);
    if (current) current.tabIndex = 0;
  }

  /** Seats per row as drawn: the grid fits as many as the width allows (app.css). */
  columns() {
    const drawn = getComputedStyle(this.root).gridTemplateColumns.split(" ").filter(Boolean);
    return Math.max(1, drawn.length);
  }

  onKey(event) {
    const numbers = [...this.seats.keys()];
    const index = numbers.indexOf(this.focusNumber);
    if (index < 0) return;
    const columns = this.columns();
    const moves = {
      ArrowRight: 1,
      ArrowLeft: -1,
      ArrowDown: columns,
      ArrowUp: -columns,
      Home: -index,
      End: numbers.length - 1 - index,
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = numbers[Math.min(numbers.length - 1, Math.max(0, index + moves[event.key]))];
    this.setFocusNumber(next);
    this.buttons.get(next)?.focus();
  }
}
