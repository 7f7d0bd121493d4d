import type { ReactNode } from 'react';

export const metadata = { title: 'JobSwipe' };

const styles = `
body { font-family: system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1b1f24; }
main { max-width: 32rem; margin: 4rem auto; background: #fff; padding: 2rem 2.5rem; border-radius: 12px; box-shadow: 0 1px 4px rgba(0,0,0,.08); }
h1 { margin-top: 0; }
button, .button { font: inherit; padding: .6rem 1.2rem; border-radius: 8px; border: 0; background: #2557d6; color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
.secondary { background: #e8ebf0; color: #1b1f24; }
.notice { background: #fff4d6; border: 1px solid #f0d27a; padding: .75rem 1rem; border-radius: 8px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1rem; }
dt { color: #5b6470; }
.actions { display: flex; gap: .75rem; margin-top: 1.5rem; }
`;

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <head>
        <style>{styles}</style>
      </head>
      <body>
        <main>{children}</main>
      </body>
    </html>
  );
}
