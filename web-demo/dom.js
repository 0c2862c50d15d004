// dom.js: small DOM helpers the page's modules share.
//
// Owns: finding an element by id, replaying a one-shot
// CSS animation, the inline instrument icons and badges, and reading and
// writing a setting in localStorage, or what a reload of this tab keeps in
// sessionStorage (either may be off). Does not own: any
// state, or which elements exist and when (views.js, players.js,
// play-area.js).

import { INSTRUMENTS } from './audio.js';

export const $ = (id) => document.getElementById(id);

/** The string kept under `key` in localStorage, or null (none kept, or storage is off). */
export function loadText(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/** Keeps the string `value` under `key` in localStorage; nothing when storage is off. */
export function storeText(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* storage may be off */
  }
}

/** The value kept as JSON under `key` in localStorage, or `fallback` (none kept, unreadable, or storage is off). */
export function loadJson(key, fallback) {
  const v = loadText(key);
  if (v === null) return fallback;
  try {
    return JSON.parse(v);
  } catch {
    return fallback;
  }
}

/** Keeps `value` as JSON under `key` in localStorage; nothing when storage is off. */
export function storeJson(key, value) {
  storeText(key, JSON.stringify(value));
}

/** The value kept as JSON under `key` in sessionStorage (this tab, across reloads), or `fallback`. */
export function loadSession(key, fallback) {
  try {
    const v = sessionStorage.getItem(key);
    return v === null ? fallback : JSON.parse(v);
  } catch {
    return fallback;
  }
}

/** Keeps `value` as JSON under `key` in sessionStorage (null removes it); nothing when storage is off. */
export function storeSession(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage may be off or full */
  }
}

/** Plays a one-shot CSS animation again, even while the last one runs. */
export function restartAnimation(el, className) {
  el.classList.remove(className);
  void el.offsetWidth; // a reflow, so removing and adding the class counts as a change
  el.classList.add(className);
}

function instrumentLabel(id) {
  const found = INSTRUMENTS.find((i) => i.id === id);
  return found ? found.label : id || 'No instrument';
}

/** Line icons drawn inline (no emoji: the machine may have no emoji font). */
const ICON_PATHS = {
  piano: '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="M7.5 5v8M12 5v8M16.5 5v8M3 13h18"/>',
  synth: '<path d="M2 17 8 7v10l6-10v10l6-10v10"/>',
  bass: '<circle cx="8" cy="16" r="5"/><circle cx="8" cy="16" r="1.2"/><path d="m11.5 12.5 8-8M18 3l3 3"/>',
  organ: '<path d="M5 20V11M9 20V7M13 20V4M17 20V8M21 20V12M3 20.5h20"/>',
  drums: '<ellipse cx="12" cy="10" rx="8" ry="3"/><path d="M4 10v6c0 1.7 3.6 3 8 3s8-1.3 8-3v-6M7 2.5l4 5M17 2.5l-4 5"/>',
  other: '<path d="M9 18V5l11-2v13"/><circle cx="6" cy="18" r="3"/><circle cx="17" cy="16" r="3"/>',
};

export function instrumentIcon(id) {
  const span = document.createElement('span');
  span.className = 'icon';
  span.setAttribute('aria-hidden', 'true');
  span.innerHTML = `<svg viewBox="0 0 24 24" width="1em" height="1em" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">${ICON_PATHS[id] || ICON_PATHS.other}</svg>`;
  return span;
}

/** An instrument's icon and name. */
export function instrumentBadge(id) {
  const span = document.createElement('span');
  span.className = 'instrument-badge';
  const text = document.createElement('span');
  text.textContent = instrumentLabel(id);
  span.append(instrumentIcon(id), text);
  return span;
}
