// Public explorers of an object, by survey and object id. Links only: nothing is fetched.
// ZTF: Fink, ALeRCE and Lasair object pages by objectId. Rubin: the LSST instances of Fink and
// Lasair by diaObjectId (their URL patterns mirror the ZTF ones).
const EXPLORERS = {
  ztf: [
    ["Fink", (id) => `https://fink-portal.org/${id}`],
    ["ALeRCE", (id) => `https://alerce.online/object/${id}`],
    ["Lasair", (id) => `https://lasair-ztf.lsst.ac.uk/objects/${id}/`],
  ],
  rubin: [
    ["Fink LSST", (id) => `https://lsst.fink-portal.org/${id}`],
    ["Lasair LSST", (id) => `https://lasair.lsst.ac.uk/objects/${id}/`],
  ],
};

export function explorerLinks(survey, objectId) {
  if (!objectId) return [];
  const safe = encodeURIComponent(objectId);
  return (EXPLORERS[survey] || []).map(([name, url]) => ({ name, href: url(safe) }));
}
