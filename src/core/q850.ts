/** Q.850 cause codes and the names FreeSWITCH uses for them (switch_types.h). */
const NAMES: Record<number, string> = {
  1: 'UNALLOCATED_NUMBER',
  3: 'NO_ROUTE_DESTINATION',
  16: 'NORMAL_CLEARING',
  17: 'USER_BUSY',
  18: 'NO_USER_RESPONSE',
  19: 'NO_ANSWER',
  21: 'CALL_REJECTED',
  27: 'DESTINATION_OUT_OF_ORDER',
  31: 'NORMAL_UNSPECIFIED',
  34: 'NORMAL_CIRCUIT_CONGESTION',
  38: 'NETWORK_OUT_OF_ORDER',
  41: 'NORMAL_TEMPORARY_FAILURE',
  42: 'SWITCH_CONGESTION',
  47: 'RESOURCE_UNAVAILABLE',
  127: 'INTERWORKING',
};
const CODES = new Map(Object.entries(NAMES).map(([code, name]) => [name, Number(code)]));

/** FreeSWITCH accepts numeric causes too, so an unnamed code is passed as its number. */
export function causeName(code: number): string {
  return NAMES[code] ?? String(code);
}

export function causeCode(name: string): number | undefined {
  return CODES.get(name) ?? (/^\d+$/.test(name) ? Number(name) : undefined);
}
