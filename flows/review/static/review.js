// ray32 review: filters, video sync and seeking, comments at a timecode, approve / reject.
// Everything that comes from the run (slugs, prompts, notes, comments) is put in the page with textContent only.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const NAME_KEY = "ray32-reviewer";

function reviewer() {
  const fixed = document.body.dataset.user;
  if (fixed) return fixed;
  const input = document.getElementById("reviewer");
  return input ? input.value.trim() : "";
}

function timecode(frame, fps) {            // HH:MM:SS:FF, as ray32.timecode.format_timecode
  const nominal = Math.max(1, Math.round(fps));
  const seconds = Math.floor(frame / fps + 1e-9);
  const ff = Math.min(Math.max(frame - Math.floor(seconds * fps + 0.5), 0), nominal - 1);
  const p = (n) => String(n).padStart(2, "0");
  return `${p(Math.floor(seconds / 3600))}:${p(Math.floor(seconds / 60) % 60)}:${p(seconds % 60)}:${p(ff)}`;
}

function frameOf(section) {
  const video = section.querySelector("video.draft");
  const fps = parseFloat(section.dataset.fps), frames = parseInt(section.dataset.frames, 10);
  if (!video) return 0;
  return Math.min(frames - 1, Math.max(0, Math.floor(video.currentTime * fps + 1e-3)));
}

function seek(section, frame) {
  const video = section.querySelector("video.draft");
  if (!video) return;
  const fps = parseFloat(section.dataset.fps);
  video.pause();
  video.currentTime = (frame + 0.5) / fps;     // the middle of the frame: shows exactly that frame
  section.scrollIntoView({block: "nearest"});
}

function placeMarkers(section) {
  const frames = parseInt(section.dataset.frames, 10);
  section.querySelectorAll(".timeline .marker").forEach((m) => {
    const f = parseInt(m.dataset.frame, 10);
    m.style.left = `${(100 * (f + 0.5)) / Math.max(1, frames)}%`;
  });
}

function showTime(section) {
  const fps = parseFloat(section.dataset.fps), frames = parseInt(section.dataset.frames, 10);
  const frame = frameOf(section);
  section.querySelectorAll(".tc").forEach((e) => { e.textContent = timecode(frame, fps); });
  const f = section.querySelector(".now .frame");
  if (f) f.textContent = String(frame);
  const head = section.querySelector(".timeline .playhead");
  if (head) head.style.left = `${(100 * (frame + 0.5)) / Math.max(1, frames)}%`;
}

function message(section, text, bad) {
  const msg = section.querySelector(".msg");
  msg.textContent = text;
  msg.classList.toggle("bad", !!bad);
}

async function post(url, body) {
  const resp = await fetch(url, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
  let data;
  try { data = await resp.json(); } catch (e) { data = {ok: false, error: `the server answered ${resp.status}`}; }
  if (!resp.ok || !data.ok) throw new Error(data.error || `the server answered ${resp.status}`);
  return data;
}

function needName(section) {
  if (reviewer()) return false;
  message(section, "type your name once at the top of the page: decisions and comments record who made them", true);
  const input = document.getElementById("reviewer");
  if (input) input.focus();
  return true;
}

async function decide(section, state) {
  const note = section.querySelector(".note").value.trim();
  const overrideInput = section.querySelector(".override");
  const override = overrideInput ? overrideInput.value.trim() : "";
  if (needName(section)) return;
  if (!note) {
    message(section, `write a note: why you ${state === "approved" ? "approve" : "reject"} this variant`, true);
    section.querySelector(".note").focus();
    return;
  }
  if (state === "approved" && section.dataset.qa === "fail" && !override) {
    message(section, "this variant failed QA: write the override reason (why deliver it anyway) to approve it", true);
    overrideInput.focus();
    return;
  }
  message(section, "recording and packaging ...", false);
  try {
    const data = await post("/api/decision", {variant: section.dataset.slug, state, note, override,
                                              user: reviewer(), stamp: section.dataset.stamp});
    section.dataset.review = data.review;
    section.classList.remove("review-awaiting", "review-approved", "review-rejected");
    section.classList.add(`review-${data.review}`);
    const badge = section.querySelector(".badge.review");
    badge.className = `badge review ${data.review}`;
    badge.textContent = `${data.review} · ${data.approval.by}`;
    let history = section.querySelector(".history");
    if (!history) {
      history = document.createElement("ul");
      history.className = "history";
      section.querySelector(".decision").appendChild(history);
    }
    const li = document.createElement("li");
    li.textContent = `${data.approval.state} by ${data.approval.by} at ${data.approval.at}: ${data.approval.note}` +
                     (data.approval.override ? ` (override: ${data.approval.override})` : "");
    history.appendChild(li);
    message(section, data.message, false);
    recount();
  } catch (e) {
    message(section, e.message, true);
  }
}

async function comment(section) {
  const box = section.querySelector(".comment-text");
  const text = box.value.trim();
  if (needName(section)) return;
  if (!text) { message(section, "write the comment first", true); box.focus(); return; }
  const frame = frameOf(section);
  try {
    const data = await post("/api/comment", {variant: section.dataset.slug, frame, text, user: reviewer(),
                                             stamp: section.dataset.stamp});
    const c = data.comment;
    const li = document.createElement("li");
    li.dataset.frame = String(c.frame);
    const b = document.createElement("button");
    b.type = "button"; b.className = "seek"; b.dataset.frame = String(c.frame); b.textContent = c.timecode;
    const by = document.createElement("span"); by.className = "by"; by.textContent = c.by;
    const t = document.createElement("span"); t.className = "text"; t.textContent = c.text;
    li.append(b, " ", by, " ", t);
    section.querySelector(".comments").appendChild(li);
    const m = document.createElement("button");
    m.type = "button"; m.className = "marker"; m.dataset.frame = String(c.frame);
    m.title = `${c.timecode} · ${c.by}: ${c.text}`;
    section.querySelector(".timeline").appendChild(m);
    placeMarkers(section);
    box.value = "";
    message(section, data.message, false);
  } catch (e) {
    message(section, e.message, true);
  }
}

function recount() {
  const all = [...document.querySelectorAll("section.variant")];
  const n = (pred) => String(all.filter(pred).length);
  document.getElementById("n-all").textContent = String(all.length);
  document.getElementById("n-fail").textContent = n((s) => s.dataset.qa !== "pass");
  for (const k of ["awaiting", "approved", "rejected"]) {
    document.getElementById(`n-${k}`).textContent = n((s) => s.dataset.review === k);
  }
  applyFilters();
}

let statusFilter = "all";

function applyFilters() {
  const axes = [...document.querySelectorAll(".axis-filter")].filter((s) => s.value !== "");
  let shown = 0;
  document.querySelectorAll("section.variant").forEach((s) => {
    let ok = statusFilter === "all" ||
             (statusFilter === "fail" ? s.dataset.qa !== "pass" : s.dataset.review === statusFilter);
    for (const sel of axes) {
      const mine = [...s.querySelectorAll(".sub .axis")].find((a) => a.dataset.axis === sel.dataset.axis);
      if (!mine || mine.dataset.value !== sel.value) ok = false;
    }
    s.hidden = !ok;
    if (ok) shown += 1;
  });
  document.getElementById("shown").textContent = `${shown} shown`;
}

document.addEventListener("DOMContentLoaded", () => {
  const name = document.getElementById("reviewer");
  if (name) {
    name.value = localStorage.getItem(NAME_KEY) || "";
    name.addEventListener("change", () => localStorage.setItem(NAME_KEY, name.value.trim()));
  }
  document.querySelectorAll(".filter").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".filter").forEach((x) => x.classList.toggle("active", x === b));
    statusFilter = b.dataset.status;
    applyFilters();
  }));
  document.querySelectorAll(".axis-filter").forEach((s) => s.addEventListener("change", applyFilters));
  document.querySelectorAll("section.variant").forEach((section) => {
    const draft = section.querySelector("video.draft"), source = section.querySelector("video.source");
    if (draft) {
      const follow = () => {
        showTime(section);
        if (source && Math.abs(source.currentTime - draft.currentTime) > 0.05) {
          source.currentTime = draft.currentTime;
        }
      };
      ["timeupdate", "seeked", "loadedmetadata"].forEach((ev) => draft.addEventListener(ev, follow));
      if (source) {
        draft.addEventListener("play", () => {
          source.currentTime = draft.currentTime;
          source.play().catch(() => {});
        });
        draft.addEventListener("pause", () => { source.pause(); source.currentTime = draft.currentTime; });
      }
    }
    section.addEventListener("click", (ev) => {
      const t = ev.target.closest("button");
      if (!t || t.disabled) return;
      if (t.classList.contains("seek") || t.classList.contains("marker")) seek(section, parseInt(t.dataset.frame, 10));
      else if (t.classList.contains("approve")) decide(section, "approved");
      else if (t.classList.contains("reject")) decide(section, "rejected");
      else if (t.classList.contains("add-comment")) comment(section);
    });
    placeMarkers(section);
  });
  applyFilters();
});
