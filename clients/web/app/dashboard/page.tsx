import { getServerSession } from 'next-auth';
import { getToken } from 'next-auth/jwt';
import { cookies, headers } from 'next/headers';
import Link from 'next/link';
import { redirect } from 'next/navigation';
import type { NextRequest } from 'next/server';
import { authOptions } from '../../src/auth-options';
import { currentEntitlements, type Entitlements } from '../../src/entitlements';
import { settings } from '../../src/settings';

export const dynamic = 'force-dynamic';

/** The session's access token, read on the server from the encrypted cookie (never sent to the browser). */
async function accessToken(): Promise<string | undefined> {
  const current = settings();
  // getToken reads cookies through getAll() and headers through a Headers: what next/headers gives.
  const req = { cookies: await cookies(), headers: await headers() } as unknown as NextRequest;
  const token = await getToken({ req, secret: current.secret, secureCookie: current.secureCookies });
  return token?.accessToken;
}

function PlanSection({ entitlements }: { entitlements: Entitlements | undefined }) {
  if (!entitlements) {
    return (
      <>
        <h2>Your plan</h2>
        <p id="plan-unavailable">Your plan cannot be shown right now.</p>
      </>
    );
  }
  const { limits, desktop_devices: devices, features } = entitlements.entitlements;
  return (
    <>
      <h2>Your plan</h2>
      <dl>
        <dt>Plan</dt>
        <dd id="plan">{entitlements.plan}</dd>
        <dt>Each month</dt>
        <dd>
          <ul id="limits">
            {Object.entries(limits).map(([meter, limit]) => (
              <li key={meter} data-meter={meter}>
                {limit} {meter.replaceAll('_', ' ')}
              </li>
            ))}
          </ul>
        </dd>
        <dt>Desktop devices</dt>
        <dd id="desktop-devices">{devices}</dd>
        <dt>Features</dt>
        <dd id="features">{features.length > 0 ? features.join(', ') : 'none'}</dd>
      </dl>
    </>
  );
}

export default async function Dashboard() {
  const session = await getServerSession(authOptions());
  if (!session?.user) redirect('/?notice=sign-in-required&callbackUrl=%2Fdashboard');
  const { name, email } = session.user;
  const token = await accessToken();
  const entitlements = token ? await currentEntitlements(settings(), token) : undefined;

  return (
    <>
      <h1>Dashboard</h1>
      <p>Welcome back{name ? `, ${name}` : ''}.</p>
      <dl>
        <dt>Name</dt>
        <dd id="name">{name}</dd>
        <dt>Email</dt>
        <dd id="email">{email}</dd>
      </dl>
      <PlanSection entitlements={entitlements} />
      <div className="actions">
        <Link className="button secondary" href="/billing">
          Billing
        </Link>
        <a className="button secondary" href={`${settings().issuer}/account`}>
          Manage sessions
        </a>
        <form method="post" action="/api/sign-out">
          <button type="submit">Sign out</button>
        </form>
      </div>
    </>
  );
}
