/** The only stylesheet of the provider's pages: small, readable on a phone, no external fonts. */
export const STYLESHEET = `
*,*::before,*::after{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:flex-start;justify-content:center;
  font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#111827}
.card{width:100%;max-width:26rem;margin:2rem 1rem;padding:1.5rem;background:#fff;border-radius:.75rem;
  box-shadow:0 1px 3px rgba(0,0,0,.12)}
.brand{margin:0 0 .5rem;font-weight:700;color:#4338ca;letter-spacing:.02em}
h1{font-size:1.4rem;margin:.25rem 0 1rem}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=email],input[type=password],input[type=text]{width:100%;padding:.65rem .75rem;font:inherit;
  border:1px solid #d1d5db;border-radius:.5rem}
input:focus{outline:2px solid #6366f1;outline-offset:1px}
button{display:block;width:100%;margin-top:1rem;padding:.7rem;font:inherit;font-weight:600;border:0;
  border-radius:.5rem;background:#4338ca;color:#fff;cursor:pointer}
button.secondary{background:#e5e7eb;color:#111827}
.error{padding:.6rem .75rem;border-radius:.5rem;background:#fef2f2;color:#991b1b;border:1px solid #fecaca}
.muted{color:#6b7280;font-size:.9rem}
ul.scopes{padding-left:1.2rem}
code{overflow-wrap:anywhere}
.card.wide{max-width:40rem}
.notice{padding:.6rem .75rem;border-radius:.5rem;background:#ecfdf5;color:#065f46;border:1px solid #a7f3d0}
ul.items{list-style:none;padding:0;margin:0}
ul.items>li{padding:.75rem 0;border-top:1px solid #e5e7eb}
ul.items>li:first-child{border-top:0}
.item-title{font-weight:600}
.badge{display:inline-block;margin-left:.4rem;padding:0 .4rem;border-radius:.25rem;background:#e0e7ff;color:#3730a3;
  font-size:.8rem;font-weight:600}
.badge.warning{background:#fef3c7;color:#92400e}
form.inline button{display:inline-block;width:auto;margin-top:.5rem;padding:.4rem .8rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
img.qr-code{display:block;width:12rem;height:12rem;margin:.5rem auto}
pre.codes{padding:.75rem;background:#f9fafb;border:1px solid #e5e7eb;border-radius:.5rem;font-size:1rem;line-height:1.8}
`;
