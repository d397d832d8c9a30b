// ari-client ships no types; we use a narrow surface of it, typed in ari-rest.ts.
declare module 'ari-client' {
  const ari: { connect(url: string, user: string, pass: string): Promise<unknown> };
  export default ari;
}
