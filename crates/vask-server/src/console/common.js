'use strict';
// Helpers shared by the console pages. Everything from the server is put in
// the page as text (textContent), never as markup.

/** A new element with optional class and text. */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/** A table row of text cells; `num` lists the columns aligned right. */
function row(cells, num = []) {
  const tr = document.createElement('tr');
  cells.forEach((c, i) => {
    const td = el('td', num.includes(i) ? 'num' : '', c);
    tr.appendChild(td);
  });
  return tr;
}

function fmt(n) {
  return typeof n === 'number' ? n.toLocaleString('en-US') : '-';
}
