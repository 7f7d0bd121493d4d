import { getServerSession } from 'next-auth';
import { redirect } from 'next/navigation';
import { authOptions } from '../../src/auth-options';
import { settings } from '../../src/settings';

export const dynamic = 'force-dynamic';

export default async function Dashboard() {
  const session = await getServerSession(authOptions());
  if (!session?.user) redirect('/?notice=sign-in-required&callbackUrl=%2Fdashboard');
  const { name, email } = session.user;

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
      <div className="actions">
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
